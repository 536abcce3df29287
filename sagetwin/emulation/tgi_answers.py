"""TGI's answers, in its shapes: ``/generate`` (the SageMaker route wraps it in a list), the
server-sent events of ``/generate_stream``, and the Messages API's chat completion and chunks."""

from __future__ import annotations

import time
from typing import Any

from sagetwin.emulation.tgi import (
    EMULATED_VERSION,
    Generation,
    Generator,
    Request,
    TgiError,
    TgiSettings,
    Token,
    validate,
)

FINGERPRINT = f"{EMULATED_VERSION}-native"  # TGI's: its version and docker label


def generate_response(generator: Generator, prompt: str, generation: Generation) -> dict[str, Any]:
    """``/generate``'s answer (the SageMaker route wraps it in a list)."""
    request = generation.request
    answer: dict[str, Any] = {"generated_text": (prompt if request.return_full_text else "") + generation.text}
    if request.details or request.decoder_input_details:
        answer["details"] = {
            "finish_reason": generation.finish_reason, "generated_tokens": len(generation.tokens),
            "seed": request.seed if request.sampling else None,
            "prefill": [{"id": i, "text": generator.tokenizer.decode([i]), "logprob": None}
                        for i in request.input_ids] if request.decoder_input_details else [],
            "tokens": [vars(token) for token in generation.tokens]}
    return answer


def stream_event(generation: Generation, token: Token, prompt: str) -> dict[str, Any]:
    """One ``data:`` event of ``/generate_stream``; the last carries the text (and, when asked
    for, the details)."""
    request, last = generation.request, generation.finish_reason is not None
    event: dict[str, Any] = {"index": len(generation.tokens), "token": vars(token),
                             "generated_text": ((prompt if request.return_full_text else "") + generation.text)
                             if last else None, "details": None}
    if last and request.details:
        event["details"] = {"finish_reason": generation.finish_reason, "generated_tokens": len(generation.tokens),
                            "seed": request.seed if request.sampling else None,
                            "input_length": len(request.input_ids)}
    return event


def chat_request(body: dict[str, Any], generator: Generator, settings: TgiSettings) -> tuple[str, Request]:
    """The Messages API's request as a generation: the tokenizer's chat template, then TGI's checks."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TgiError("Input validation error: `messages` must be a non-empty list", 422)
    try:
        prompt = generator.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # no template, or messages it cannot render
        raise TgiError(f"Template error: {exc}", 422, "template_error") from None
    temperature = body.get("temperature")
    greedy = temperature == 0  # TGI's chat: sampling unless temperature is 0
    parameters = {"max_new_tokens": body.get("max_tokens"), "temperature": None if greedy else temperature,
                  "do_sample": not greedy, "top_p": body.get("top_p"), "seed": body.get("seed"),
                  "stop": body.get("stop")}
    return prompt, validate(prompt, {k: v for k, v in parameters.items() if v is not None}, generator.tokenizer,
                            settings, add_special_tokens=False)  # the template holds the special tokens


def chat_completion(generator: Generator, generation: Generation) -> dict[str, Any]:
    prompt_tokens, completion_tokens = len(generation.request.input_ids), len(generation.tokens)
    return {"object": "chat.completion", "id": "", "created": int(time.time()), "model": generator.model_id,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": generation.text},
                         "logprobs": None, "finish_reason": chat_finish(generation.finish_reason)}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def chat_chunk(generator: Generator, generation: Generation, token: Token) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "id": "", "created": int(time.time()), "model": generator.model_id,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "" if token.special else token.text},
                         "logprobs": None, "finish_reason": chat_finish(generation.finish_reason)}], "usage": None}


def chat_finish(reason: str | None) -> str | None:
    return None if reason is None else "length" if reason == "length" else "stop"
