"""Text Generation Inference's contract (TGI 2.x/3.x, as its launcher and router behave),
emulated with transformers on this machine: the container's environment read as TGI's launcher
reads it, requests validated in the router's words (422 ``Input validation error: ...``),
generation one token at a time (greedy is deterministic, ``seed`` is honoured, a stop sequence
ends the answer and stays in it), and answers in TGI's shapes: ``/generate``, the SageMaker route
(a list), server-sent events for streaming, and the Messages API's chat completion. The HTTP side
is ``tgi_server``."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from sagetwin.emulation.model_memory import load_options, refuse_what_cannot_fit
from sagetwin.emulation.router_server import RouterError

EMULATED_VERSION = "3.0.1"  # the TGI version whose contract this follows
CONTEXT_TOKENS = 5  # prompt tokens decoded ahead of the generated ones (TGI's prefix offset)
DEFAULT_GENERATION_LENGTH = 1024  # TGI's cap on max_new_tokens when a request leaves it out
MAX_STOP_SEQUENCES = 4
MAX_BEST_OF = 2  # the launcher's defaults
MAX_CLIENT_BATCH_SIZE = 4


class TgiError(RouterError):
    """What TGI's router answers instead of a generation (422 ``validation`` unless said)."""


def invalid(message: str) -> TgiError:
    return TgiError(f"Input validation error: {message}")


@dataclass(frozen=True)
class TgiSettings:
    """The launcher's limits, from the container's environment (``MAX_INPUT_TOKENS`` or its old
    name ``MAX_INPUT_LENGTH``, ``MAX_TOTAL_TOKENS``, ``MAX_BATCH_PREFILL_TOKENS``); where unset,
    from the model's context length as TGI derives them."""

    max_input_tokens: int
    max_total_tokens: int
    max_best_of: int = MAX_BEST_OF
    max_client_batch_size: int = MAX_CLIENT_BATCH_SIZE

    @classmethod
    def from_env(cls, env: dict[str, str], model_max: int, on_gpu: bool) -> TgiSettings:
        quantize = env.get("HF_MODEL_QUANTIZE") or env.get("QUANTIZE")
        if quantize and not on_gpu:
            raise SystemExit(f"sagetwin-tgi: HF_MODEL_QUANTIZE={quantize} needs a GPU (TGI's quantized kernels are "
                             "CUDA ones); unset it to serve the model unquantized here.")
        total = _int(env, "MAX_TOTAL_TOKENS") or min(model_max, 4096)
        inputs = _int(env, "MAX_INPUT_TOKENS") or _int(env, "MAX_INPUT_LENGTH") or total - 1
        if inputs >= total:
            raise SystemExit(f"sagetwin-tgi: `max_input_tokens` must be < `max_total_tokens`. Given: {inputs} and "
                             f"{total} (MAX_INPUT_TOKENS and MAX_TOTAL_TOKENS)")
        prefill = _int(env, "MAX_BATCH_PREFILL_TOKENS")
        if prefill is not None and prefill < inputs:
            raise SystemExit(f"sagetwin-tgi: `max_batch_prefill_tokens` must be >= `max_input_tokens`. Given: "
                             f"{prefill} and {inputs}")
        return cls(inputs, total, _int(env, "MAX_BEST_OF") or MAX_BEST_OF,
                   _int(env, "MAX_CLIENT_BATCH_SIZE") or MAX_CLIENT_BATCH_SIZE)


def _int(env: dict[str, str], name: str) -> int | None:
    value = env.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"sagetwin-tgi: {name}={value!r} is not a whole number.") from None


@dataclass
class Request:
    """A validated generation request."""

    input_ids: list[int]
    max_new_tokens: int
    stop: list[str] = field(default_factory=list)
    sampling: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0
    return_full_text: bool = False
    details: bool = False
    decoder_input_details: bool = False
    best_of: int = 1  # sampled sequences, the one of highest mean logprob answered


def validate(inputs: Any, parameters: dict[str, Any] | None, tokenizer: Any, settings: TgiSettings, *,
             full_text_default: bool = False, add_special_tokens: bool = True) -> Request:
    """``parameters`` checked in the router's order and words; the prompt tokenized. With no
    ``parameters`` at all TGI's defaults sample (``do_sample: true``); ``return_full_text`` defaults
    to ``full_text_default`` (true on the SageMaker route for a text-generation model)."""
    p = {"do_sample": True} if parameters is None else parameters
    check_types(p)
    best_of = p.get("best_of") or 1
    if best_of > 1:  # asked of the generation before it is validated
        _check_best_of(best_of, settings)
    warped = ((p.get("temperature") or 1.0) != 1.0 or (p.get("top_k") or 0) != 0 or (p.get("top_p") or 1.0) < 1.0
              or (p.get("typical_p") or 1.0) < 1.0)  # TGI's NextTokenChooser: warpers mean sampling
    sampling = bool(p.get("do_sample")) or warped
    # the router's own test: any sampling parameter given at all
    if best_of > 1 and not (p.get("do_sample") or any(p.get(name) is not None for name in WARPERS)):
        raise invalid("you must use sampling when `best_of` is > 1")
    temperature, repetition = p.get("temperature") or 1.0, p.get("repetition_penalty")
    if p.get("temperature") is not None and p["temperature"] <= 0:
        raise invalid("`temperature` must be strictly positive")
    if repetition is not None and repetition <= 0:
        raise invalid("`repetition_penalty` must be strictly positive")
    for name in ("top_p", "typical_p"):
        if p.get(name) is not None and not 0.0 < p[name] < 1.0:
            raise invalid(f"`{name}` must be > 0.0 and < 1.0")
    if p.get("top_k") is not None and p["top_k"] <= 0:
        raise invalid("`top_k` must be strictly positive")
    if p.get("max_new_tokens") == 0:
        raise invalid("`max_new_tokens` must be strictly positive")
    stop = list(p.get("stop") or [])
    if len(stop) > MAX_STOP_SEQUENCES:
        raise invalid(f"`stop` supports up to {MAX_STOP_SEQUENCES} stop sequences. Given: {len(stop)}")
    if best_of > 1 and p.get("seed") is not None:
        raise invalid("`seed` must not be set when `best_of` > 1")
    if not isinstance(inputs, str) or not inputs:
        raise invalid("`inputs` cannot be empty")
    ids = tokenizer(inputs, add_special_tokens=add_special_tokens)["input_ids"]
    max_new = p.get("max_new_tokens") or min(max(settings.max_total_tokens - len(ids), 0), DEFAULT_GENERATION_LENGTH)
    if len(ids) + max_new > settings.max_total_tokens:
        raise invalid(f"`inputs` tokens + `max_new_tokens` must be <= {settings.max_total_tokens}. Given: {len(ids)} "
                      f"`inputs` tokens and {max_new} `max_new_tokens`")
    if len(ids) > settings.max_input_tokens:
        raise invalid(f"`inputs` must have less than {settings.max_input_tokens} tokens. Given: {len(ids)}")
    return Request(ids, int(max_new), stop, sampling, float(temperature), int(p.get("top_k") or 0),
                   float(p.get("top_p") or 1.0), float(p.get("typical_p") or 1.0), float(repetition or 1.0),
                   int(p["seed"]) if p.get("seed") is not None else random.getrandbits(63),
                   bool(p.get("return_full_text", full_text_default)), bool(p.get("details")),
                   bool(p.get("decoder_input_details")), best_of)


def _check_best_of(best_of: int, settings: TgiSettings) -> None:
    if settings.max_best_of == 1:
        raise invalid("`best_of` != 1 is not allowed for this endpoint")
    if best_of > settings.max_best_of:
        raise invalid(f"`best_of` must be > 0 and <= {settings.max_best_of}. Given: {best_of}")


WARPERS = ("temperature", "top_k", "top_p", "typical_p")
TYPES = {"max_new_tokens": int, "top_k": int, "seed": int, "best_of": int, "stop": list, "do_sample": bool,
         "details": bool, "return_full_text": bool, "decoder_input_details": bool, "temperature": (int, float),
         "top_p": (int, float), "typical_p": (int, float), "repetition_penalty": (int, float)}


def check_types(parameters: Any) -> None:
    """What axum's JSON extractor refuses before TGI sees the request: a wrongly typed value (a
    string for ``stop``, a negative ``max_new_tokens``), 422 in serde's words."""
    if not isinstance(parameters, dict):
        raise TgiError("Failed to deserialize the JSON body into the target type: parameters: expected a map", 422,
                       "validation")
    for name, kind in TYPES.items():
        value = parameters.get(name)
        if value is None:
            continue
        wrong = not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))
        if wrong or (kind is int and value < 0):
            raise TgiError(f"Failed to deserialize the JSON body into the target type: parameters.{name}: invalid "
                           f"value: {json.dumps(value)}, expected {'a list of strings' if kind is list else kind}",
                           422, "validation")


@dataclass
class Token:
    id: int
    text: str
    logprob: float
    special: bool


@dataclass
class Generation:
    """A generation as it goes: its tokens, its text, and why it ended (once it has)."""

    request: Request
    tokens: list[Token] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None


class Generator:
    """The model and tokenizer, and one request's tokens produced one at a time."""

    def __init__(self, model_dir: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        refuse_what_cannot_fit(model_dir, torch, "sagetwin-tgi")
        self.torch = torch
        # the image's entrypoint hands HF_MODEL_TRUST_REMOTE_CODE to the launcher as TRUST_REMOTE_CODE
        trust = (os.environ.get("HF_MODEL_TRUST_REMOTE_CODE") or os.environ.get("TRUST_REMOTE_CODE", "")) == "true"
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=trust, **load_options(torch))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device).eval()
        self.model_id = os.environ.get("HF_MODEL_ID") or model_dir
        config = self.model.config
        self.model_max = int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 2048))

    def _processors(self, request: Request) -> Any:
        from transformers import LogitsProcessorList
        from transformers.generation import logits_process as lp

        chain = LogitsProcessorList()
        if request.repetition_penalty != 1.0:
            chain.append(lp.RepetitionPenaltyLogitsProcessor(request.repetition_penalty))
        if request.sampling:
            if request.temperature != 1.0:
                chain.append(lp.TemperatureLogitsWarper(request.temperature))
            if request.top_k:
                chain.append(lp.TopKLogitsWarper(request.top_k))
            if request.top_p < 1.0:
                chain.append(lp.TopPLogitsWarper(request.top_p))
            if request.typical_p < 1.0:
                chain.append(lp.TypicalLogitsWarper(request.typical_p))
        return chain

    def generate(self, request: Request) -> Iterator[tuple[Generation, Token]]:
        """Each new token with the generation so far; ``finish_reason`` set on the last."""
        torch = self.torch
        generation, chooser = Generation(request), self._processors(request)
        rng = torch.Generator(device=self.device).manual_seed(request.seed)
        ids = torch.tensor([request.input_ids], device=self.device)
        # decoded after a few prompt tokens, as TGI decodes: a first token keeps its leading space
        step, past, produced = ids, None, list(request.input_ids[-CONTEXT_TOKENS:])
        context = self.tokenizer.decode(produced, skip_special_tokens=True)
        eos = set(_as_list(self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id))
        special_ids = set(self.tokenizer.all_special_ids) | eos
        with torch.inference_mode():
            for index in range(request.max_new_tokens):
                out = self.model(input_ids=step, past_key_values=past, use_cache=True)
                past, logits = out.past_key_values, out.logits[:, -1, :].float()
                scores = chooser(ids, logits)
                token_id = int(torch.multinomial(torch.softmax(scores, -1), 1, generator=rng)[0, 0]) \
                    if request.sampling else int(torch.argmax(scores, -1)[0])
                logprob = float(torch.log_softmax(scores, -1)[0, token_id])  # after the warpers, as TGI's
                step = torch.tensor([[token_id]], device=self.device)
                ids = torch.cat([ids, step], dim=1)
                token, latest = self._token(generation, produced, context, token_id, logprob, token_id in special_ids)
                if index + 1 == request.max_new_tokens:  # TGI's order: length first
                    generation.finish_reason = "length"
                elif token_id in eos:
                    generation.finish_reason = "eos_token"
                elif any(latest.endswith(stop) for stop in request.stop if stop):
                    generation.finish_reason = "stop_sequence"
                if generation.finish_reason and latest != generation.text and latest.startswith(generation.text):
                    token.text += latest[len(generation.text):]  # text held back for a character's last byte
                    generation.text = latest
                yield generation, token
                if generation.finish_reason:
                    return

    def _token(self, generation: Generation, produced: list[int], context: str, token_id: int, logprob: float,
               special: bool) -> tuple[Token, str]:
        """The token, and the whole text so far. A token's text is what it adds to the text; none
        while the text ends in half a character (as TGI's incremental decoding holds it back)."""
        if not special:
            produced.append(token_id)
        decoded = self.tokenizer.decode(produced, skip_special_tokens=True)
        latest = decoded[len(context):] if decoded.startswith(context) else decoded
        if special:
            text = self.tokenizer.decode([token_id])
        elif latest.endswith("\ufffd") or not latest.startswith(generation.text):
            text = ""
        else:
            text, generation.text = latest[len(generation.text):], latest
        token = Token(token_id, text, logprob, special)
        generation.tokens.append(token)
        return token, latest

    def run(self, request: Request) -> Generation:
        last = Generation(request)
        for step in self.generate(request):
            last = step[0]
        return last

    def best_of(self, request: Request) -> tuple[Generation, list[Generation]]:
        """``request.best_of`` sampled sequences, each with a seed of its own: the one of highest
        mean token logprob, and the others (TGI's ``best_of_sequences``)."""
        runs = [self.run(replace(request, seed=request.seed if n == 0 else random.getrandbits(63)))
                for n in range(request.best_of)]
        best = max(range(len(runs)), key=lambda n: sum(t.logprob for t in runs[n].tokens) / max(len(runs[n].tokens), 1))
        return runs[best], runs[:best] + runs[best + 1:]


def _as_list(value: Any) -> list[int]:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]
