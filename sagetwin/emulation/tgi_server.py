"""A Text Generation Inference container's HTTP side on 127.0.0.1, emulated (``tgi``): what
SageMaker calls (``POST /invocations``: a generation, ``stream: true`` for server-sent events, or
a Messages API body) and TGI's own routes (``/generate``, ``/generate_stream``,
``/v1/chat/completions``), on ``router_server``.

    python -m sagetwin.emulation.tgi_server --model-dir DIR [--host H] [--port P] [--port-file F]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sagetwin.emulation import router_server
from sagetwin.emulation import tgi_answers as answers
from sagetwin.emulation.router_server import VERSION_ENV
from sagetwin.emulation.tgi import EMULATED_VERSION, Generator, TgiError, TgiSettings, check_types, validate


@dataclass
class LoadedTgi:
    generator: Generator
    settings: TgiSettings
    # what POST /invocations takes: any of TGI 3's three shapes, or before 3.0 one route only, a
    # generation, or a chat with MESSAGES_API_ENABLED (router/src/server.rs of those versions)
    invocations: str = "any"


def invocations_route(env: dict[str, str]) -> str:
    major = (env.get(VERSION_ENV) or EMULATED_VERSION).split(".")[0]
    if not major.isdigit() or int(major) >= 3:
        return "any"
    return "chat" if env.get("MESSAGES_API_ENABLED", "").lower() == "true" else "generate"


class TgiHandler(router_server.RouterHandler):
    def info(self) -> dict[str, Any]:
        loaded: LoadedTgi = self.state.model
        return {"model_id": loaded.generator.model_id, "max_input_tokens": loaded.settings.max_input_tokens,
                "max_total_tokens": loaded.settings.max_total_tokens, "max_stop_sequences": 4,
                "max_best_of": loaded.settings.max_best_of,
                "max_client_batch_size": loaded.settings.max_client_batch_size,
                "version": os.environ.get(VERSION_ENV) or EMULATED_VERSION, "sha": "sagetwin-emulation"}

    def route(self, path: str, payload: dict[str, Any]) -> None:
        if (path == "/invocations" or path.startswith("/v1/")) and not isinstance(payload.get("stream", False), bool):
            raise TgiError("Failed to deserialize the JSON body into the target type: stream: invalid type: "
                           f"{json.dumps(payload['stream'])}, expected a boolean", 422)
        # the SageMaker route tries a generation's shape, then a chat's, then a completion's
        chat = "messages" in payload and "inputs" not in payload
        completion = "prompt" in payload and "inputs" not in payload and "messages" not in payload
        only = self.state.model.invocations if path == "/invocations" else "any"
        if only != "any":  # an older TGI: one shape on the SageMaker route, what else is sent fails to parse
            needed = "messages" if only == "chat" else "inputs"
            if needed not in payload:
                raise TgiError(f"Failed to deserialize the JSON body into the target type: missing field `{needed}`",
                               422)
            chat, completion = only == "chat", False
        if path == "/v1/chat/completions" or (path == "/invocations" and chat):
            self._chat(payload)
        elif path == "/v1/completions" or (path == "/invocations" and completion):
            self._complete(payload)
        elif path in ("/generate", "/generate_stream", "/invocations"):
            stream = path == "/generate_stream" or (path == "/invocations" and bool(payload.get("stream")))
            self._generate(payload, stream, as_list=path == "/invocations")
        else:
            self._json(404, {"error": f"no route POST {path}", "error_type": "not_found"})

    def _generate(self, payload: dict[str, Any], stream: bool, as_list: bool) -> None:
        loaded: LoadedTgi = self.state.model
        generator, prompt, parameters = loaded.generator, payload.get("inputs"), payload.get("parameters")
        if parameters is not None:
            check_types(parameters)  # the body's types before anything else
        best_of = (parameters or {}).get("best_of")
        if stream and best_of is not None and best_of != 1:  # asked before the request is validated
            self._events(iter([stream_error(TgiError("Input validation error: `best_of` != 1 is not supported when "
                                                     "streaming tokens"))]))
            return
        try:
            request = validate(prompt, parameters, generator.tokenizer, loaded.settings,
                               full_text_default=as_list)  # the SageMaker route: the prompt in the answer
        except TgiError as error:
            if not stream or error.message.startswith("Failed to deserialize"):
                raise
            self._events(iter([stream_error(error)]))  # TGI: in the stream
            return
        if stream:
            self._events(answers.stream_event(g, token, prompt) for g, token in generator.generate(request))
            return
        best, others = generator.best_of(request) if request.best_of > 1 else (generator.run(request), [])
        answer = answers.generate_response(generator, prompt, best, others)
        self._json(200, [answer] if as_list else answer)

    def _complete(self, payload: dict[str, Any]) -> None:
        """The completions API: a generation per prompt; streamed, one prompt after another."""
        loaded: LoadedTgi = self.state.model
        generator, stream = loaded.generator, bool(payload.get("stream"))
        requests = answers.completion_requests(payload, generator, loaded.settings, stream)
        if stream:
            self._events(self._completion_events(generator, requests), done=True)
            return
        for request in requests:
            if isinstance(request, TgiError):
                raise request
        self._json(200, answers.completion(generator, [generator.run(request) for request in requests]))

    @staticmethod
    def _completion_events(generator: Generator, requests: list[Any]) -> Iterator[dict[str, Any]]:
        for index, request in enumerate(requests):
            if isinstance(request, TgiError):  # this prompt's error in its place; the others go on
                yield stream_error(request)
                continue
            for generation, token in generator.generate(request):
                yield answers.completion_chunk(generator, index, generation, token)

    def _chat(self, payload: dict[str, Any]) -> None:
        loaded: LoadedTgi = self.state.model
        generator = loaded.generator
        _, request = answers.chat_request(payload, generator, loaded.settings)
        if payload.get("stream"):
            self._events((answers.chat_chunk(generator, g, token) for g, token in generator.generate(request)),
                         done=True)
            return
        self._json(200, answers.chat_completion(generator, generator.run(request)))

    def _events(self, events: Iterator[dict[str, Any]], done: bool = False) -> None:
        """Server-sent events in chunked transfer encoding, each sent as soon as it is made; a
        failure on the way is an error event that ends the stream, as TGI sends it."""
        self.reader.settimeout(self.timeout)  # a reader that stops reading fails the write, in time
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        tail = ""
        try:
            for event in events:
                send(f"data:{json.dumps(event)}\n\n".encode())
            if done:
                send(b"data:[DONE]\n\n")
        except OSError:
            self.close_connection = True  # the client left mid-stream
            return
        except Exception as exc:  # the generation failed mid-stream: said in the stream, as TGI says it
            tail = f"data:{json.dumps({'error': f'{type(exc).__name__}: {exc}', 'error_type': 'generation'})}\n\n"
        try:
            if tail:
                send(tail.encode() + (b"data:[DONE]\n\n" if done else b""))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True


def stream_error(error: TgiError) -> dict[str, Any]:
    """An error as a stream's event says it."""
    return {"error": error.message, "error_type": error.error_type}


def load(model_dir: str) -> LoadedTgi:
    generator = Generator(model_dir)  # SystemExit: refused before loading (too large), with the numbers
    return LoadedTgi(generator, TgiSettings.from_env(dict(os.environ), generator.model_max,
                                                     generator.device == "cuda"), invocations_route(dict(os.environ)))


def main(argv: list[str] | None = None) -> None:
    router_server.main(argv, "sagetwin-tgi", f"emulating TGI {EMULATED_VERSION}'s HTTP contract", TgiHandler, load)


if __name__ == "__main__":
    main()
