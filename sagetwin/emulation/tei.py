"""Text Embeddings Inference's contract (TEI 1.8, as its router answers), emulated with
transformers on this machine: the pooling TEI would use (``POOLING``, else the
sentence-transformers ``1_Pooling/config.json``), ``{"inputs": str | [str], "normalize",
"truncate"}`` answered as ``[[float, ...], ...]``, and TEI's errors with its statuses: an empty
input 400 ``Empty``, a batch over ``MAX_CLIENT_BATCH_SIZE`` or an input over the model's length
413 ``Validation``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sagetwin.emulation.model_memory import load_options, refuse_what_cannot_fit
from sagetwin.emulation.router_server import RouterError

EMULATED_VERSION = "1.8.2"  # the TEI version whose contract this follows
DEFAULT_MAX_CLIENT_BATCH_SIZE = 32
POOLINGS = ("cls", "mean", "last-token")


def pooling_of(model_dir: str, env: dict[str, str]) -> str:
    """``POOLING`` (the launcher's ``--pooling``), else the sentence-transformers pooling config."""
    chosen = env.get("POOLING")
    if chosen:
        if chosen not in POOLINGS:
            raise SystemExit(f"sagetwin-tei: POOLING={chosen!r} is not emulated; use one of {', '.join(POOLINGS)}.")
        return chosen
    config = Path(model_dir) / "1_Pooling" / "config.json"
    if not config.is_file():
        raise SystemExit("sagetwin-tei: `--pooling` arg is not set and we could not find a pooling configuration "
                         "(`1_Pooling/config.json`) for this model; set POOLING (cls, mean or last-token) in the "
                         "container's environment.")
    modes = json.loads(config.read_text())
    if modes.get("pooling_mode_cls_token"):
        return "cls"
    if modes.get("pooling_mode_lasttoken"):
        return "last-token"
    if modes.get("pooling_mode_mean_tokens"):
        return "mean"
    raise SystemExit(f"sagetwin-tei: the pooling in {config} is not one TEI runs (cls, mean or last-token).")


class Embedder:
    """The model, its tokenizer and TEI's limits; ``embed`` answers one request."""

    def __init__(self, model_dir: str, env: dict[str, str] | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        env = dict(os.environ) if env is None else env
        refuse_what_cannot_fit(model_dir, torch, "sagetwin-tei")
        self.torch = torch
        self.pooling = pooling_of(model_dir, env)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "right"  # the pooling below reads positions; TEI itself never pads
        self.model = AutoModel.from_pretrained(model_dir, **load_options(torch)).eval()
        self.model_id = env.get("HF_MODEL_ID") or model_dir
        positions = getattr(self.model.config, "max_position_embeddings", None) or 512
        self.max_input_length = min(positions, self.tokenizer.model_max_length or positions)
        self.max_batch = int(env.get("MAX_CLIENT_BATCH_SIZE") or DEFAULT_MAX_CLIENT_BATCH_SIZE)

    def embed(self, inputs: Any, normalize: bool = True, truncate: bool = False) -> list[list[float]]:
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            raise RouterError("Failed to deserialize the JSON body into the target type: inputs: expected a string "
                              "or a list of strings", 422, "Validation")
        if not texts or any(not text for text in texts):
            raise RouterError("`inputs` cannot be empty", 400, "Empty")
        if len(texts) > self.max_batch:
            raise RouterError(f"batch size {len(texts)} > maximum allowed batch size {self.max_batch}", 413,
                              "Validation")
        for text in texts:
            length = len(self.tokenizer(text)["input_ids"])
            if length > self.max_input_length and not truncate:
                raise RouterError(f"Input validation error: `inputs` must have less than {self.max_input_length} "
                                  f"tokens. Given: {length}", 413, "Validation")
        torch = self.torch
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_input_length,
                               return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "mean":
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        else:  # last-token: the last real token of each text
            pooled = hidden[torch.arange(hidden.shape[0]), batch["attention_mask"].sum(1) - 1]
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.tolist()
