"""A tiny causal language model built offline, for LLM endpoints (the TGI contract) in tests and
trials: a 2-layer GPT-2 with random weights, a BPE tokenizer trained on a few
sentences, and a chat template, so prompts, parameters, stop sequences, the Messages API and
streaming can be tried without the Hub or a GPU. Its words are random; its behaviour is a model's."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from sagetwin.core.paths import building, home_folder

PREPARED_MARKER = "sagetwin-prepared.json"
FORMAT = 2  # 2: the tokenizer readable by the transformers of the serving images too
SENTENCES = [
    "SageMaker endpoints answer prompts with generated text.",
    "The quick brown fox jumps over the lazy dog.",
    "A tiny model trained on nothing still speaks in tokens.",
    "Stop sequences end the answer where the caller asks.",
    "user: what is the capital of France? assistant: Paris is the capital of France.",
    "Every answer ends. Every stream of tokens ends too, one token at a time.",
]
CHAT_TEMPLATE = ("{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}</s>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def tiny_causal_lm(target: Path | None = None, *, seed: int = 0, layers: int = 2, width: int = 64) -> Path:
    """The model's folder (``save_pretrained`` layout), built once into ``target`` (default: the
    models cache under sagetwin's home); ``layers`` and ``width`` make it larger (benchmarks)."""
    target = target or home_folder("models") / ("tiny-causal-lm" if (layers, width) == (2, 64)
                                                else f"causal-lm-{layers}x{width}")
    return built_once(target, "tiny-causal-lm", lambda folder: _write(folder, seed, layers, width))


def built_once(target: Path, kind: str, write: Callable[[Path], None]) -> Path:
    """``target``, written by ``write`` unless a whole build of this kind and format is already there."""
    marker = target / PREPARED_MARKER
    recorded = json.loads(marker.read_text()) if marker.is_file() else {}
    built = (recorded.get("format"), recorded.get("kind")) == (FORMAT, kind)
    if (target / "config.json").is_file() and built:
        return target
    shutil.rmtree(target, ignore_errors=True)  # a folder without the marker is an interrupted old build
    with building(target) as tmp:
        write(tmp)
    return target


def _write(folder: Path, seed: int, layers: int, width: int) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))  # words and pieces of the sentences: readable output
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.decoder = decoders.Metaspace()
    bpe.train_from_iterator(SENTENCES, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"],
        show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 512
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=width, n_layer=layers, n_head=2,
                        initializer_range=0.2,  # wide enough that greedy output is not one token repeated
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    readable_by_older_transformers(folder)
    (folder / PREPARED_MARKER).write_text(json.dumps({"kind": "tiny-causal-lm", "seed": seed, "layers": layers,
                                                      "width": width, "format": FORMAT}))


def readable_by_older_transformers(folder: Path, chat_template: str | None = CHAT_TEMPLATE) -> None:
    """transformers 5 names its own tokenizer class and keeps the chat template in a file of its
    own; the 4.x of the serving images (4.48 in the LLM image's emulation) know neither: the
    class every version knows, and the template in the config too, as 4.x reads it."""
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    if chat_template:
        config["chat_template"] = chat_template
    config_path.write_text(json.dumps(config, indent=2) + "\n")
