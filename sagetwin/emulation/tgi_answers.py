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


def generate_response(generator: Generator, prompt: str, generation: Generation,
                      others: list[Generation] | None = None) -> dict[str, Any]:
    """``/generate``'s answer (the SageMaker route wraps it in a list); ``others``: the sequences
    ``best_of`` did not choose."""
    request = generation.request
    answer: dict[str, Any] = {"generated_text": (prompt if request.return_full_text else "") + generation.text}
    if request.details or request.decoder_input_details:
        answer["details"] = _details(generator, prompt, generation)
        del answer["details"]["generated_text"]
        if others:
            answer["details"]["best_of_sequences"] = [_details(generator, prompt, other) for other in others]
    return answer


def _details(generator: Generator, prompt: str, generation: Generation) -> dict[str, Any]:
    request = generation.request
    return {"generated_text": (prompt if request.return_full_text else "") + generation.text,
            "finish_reason": generation.finish_reason, "generated_tokens": len(generation.tokens),
            "seed": request.seed if request.sampling else None,
            "prefill": [{"id": i, "text": generator.tokenizer.decode([i]), "logprob": None}
                        for i in request.input_ids] if request.decoder_input_details else [],
            "tokens": [vars(token) for token in generation.tokens]}


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
    return prompt, validate(prompt, openai_parameters(body), generator.tokenizer, settings,
                            add_special_tokens=False)  # the template holds the special tokens


def openai_parameters(body: dict[str, Any], **more: Any) -> dict[str, Any]:
    """An OpenAI-style body's sampling as a generation's parameters, as TGI maps them: sampling
    unless ``temperature`` is 0; what the body leaves out, left out."""
    temperature = body.get("temperature")
    greedy = temperature == 0
    parameters = {"max_new_tokens": body.get("max_tokens"), "temperature": None if greedy else temperature,
                  "do_sample": not greedy, "top_p": body.get("top_p"), "seed": body.get("seed"),
                  "stop": body.get("stop"), **more}
    return {name: value for name, value in parameters.items() if value is not None}


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


def completion_requests(body: dict[str, Any], generator: Generator, settings: TgiSettings,
                        stream: bool) -> list[Request | TgiError]:
    """The completions API's request (``prompt``: one text or several, each a generation) in
    TGI's words and order; a prompt that fails validation is its error (a stream says it in its
    place and goes on with the others)."""
    prompts = body.get("prompt")
    prompts = [prompts] if isinstance(prompts, str) else prompts
    if not isinstance(prompts, list) or not all(isinstance(text, str) for text in prompts):
        raise TgiError("Failed to deserialize the JSON body into the target type: prompt: expected a string or a "
                       "list of strings", 422)
    if not prompts:
        raise TgiError("Failed to deserialize the JSON body into the target type: prompt: Empty array detected. Do "
                       "not use an empty array for the prompt.", 422)
    if body.get("suffix") is not None:
        raise TgiError("Suffix is not supported and can be achieved by preprocessing the prompt.", 422,
                       "suffix not supported")
    if body.get("frequency_penalty") not in (None, 0, 0.0):
        raise TgiError("sagetwin's TGI emulation does not apply `frequency_penalty`; leave it out here, and try it on "
                       "SageMaker itself.", 422)
    if len(prompts) > settings.max_client_batch_size:
        raise TgiError(f"Number of prompts exceeds the maximum allowed batch size of {settings.max_client_batch_size}",
                       422, "batch size exceeded")
    parameters = openai_parameters(body, repetition_penalty=body.get("repetition_penalty"), details=True,
                                   decoder_input_details=not stream)
    requests: list[Request | TgiError] = []
    for text in prompts:
        try:
            requests.append(validate(text, parameters, generator.tokenizer, settings))
        except TgiError as error:
            if not error.message.startswith("Input validation error"):
                raise  # the body itself is refused
            requests.append(error)
    return requests


def completion(generator: Generator, generations: list[Generation]) -> dict[str, Any]:
    """The completions API's answer: a choice per prompt, in the prompts' order."""
    prompt_tokens = sum(len(g.request.input_ids) for g in generations)
    completion_tokens = sum(len(g.tokens) for g in generations)
    return {"object": "text_completion", "id": "", "created": int(time.time()), "model": generator.model_id,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": index, "text": g.text, "logprobs": None, "finish_reason": completion_finish(g)}
                        for index, g in enumerate(generations)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def completion_chunk(generator: Generator, index: int, generation: Generation, token: Token) -> dict[str, Any]:
    """A streamed token; the last is the whole answer's shape with that token's text, its finish
    reason in the router's own words (``eos_token``) and the usage."""
    if generation.finish_reason is None:
        return {"object": "text_completion", "id": "", "created": int(time.time()),
                "choices": [{"index": index, "text": token.text, "logprobs": None, "finish_reason": ""}],
                "model": generator.model_id, "system_fingerprint": FINGERPRINT}
    final = completion(generator, [generation])
    final["choices"][0].update(index=index, text=token.text, finish_reason=generation.finish_reason)
    return final


def completion_finish(generation: Generation) -> str | None:
    """OpenAI's words for why a generation ended, as TGI's completions say them."""
    reason = generation.finish_reason
    return "stop" if reason == "eos_token" else reason
