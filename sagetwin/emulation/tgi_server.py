"""A Text Generation Inference container's HTTP side on 127.0.0.1, emulated (``tgi``): what
SageMaker calls (``GET /ping``, ``POST /invocations``: a generation, ``stream: true`` for
server-sent events, or a Messages API body) and TGI's own routes (``/health``, ``/info``,
``/generate``, ``/generate_stream``, ``/v1/chat/completions``), on the bounded server the
inference-toolkit emulation uses. Errors are TGI's: ``{"error", "error_type"}`` with its status.

    python -m sagetwin.emulation.tgi_server --model-dir DIR [--host H] [--port P] [--port-file F]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import Any

from sagetwin.emulation import tgi_answers as answers
from sagetwin.emulation.http_server import InvocationHandler, ServerState, announce_port, make_server
from sagetwin.emulation.tgi import Generator, TgiError, TgiSettings, validate

EMULATED_VERSION = "3.0.1"  # the TGI version whose HTTP contract this follows


class TgiState(ServerState):
    def __init__(self) -> None:
        super().__init__()
        self.generator: Generator | None = None
        self.settings: TgiSettings | None = None
        self.lock = threading.Lock()  # one generation at a time: a batch of one


class TgiHandler(InvocationHandler):
    state: TgiState

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode())

    def _error(self, error: TgiError) -> None:
        self._json(error.status, {"error": error.message, "error_type": error.error_type})

    def do_GET(self) -> None:  # noqa: N802
        state = self.state
        if self.path not in ("/ping", "/health", "/info"):
            self._json(404, {"error": f"no route GET {self.path}", "error_type": "not_found"})
        elif state.generator is None or state.settings is None:
            self._json(503, {"error": state.load_error or "model is loading", "error_type": "unhealthy"})
        elif self.path == "/info":
            self._json(200, {"model_id": state.generator.model_id, "max_input_tokens": state.settings.max_input_tokens,
                             "max_total_tokens": state.settings.max_total_tokens, "max_stop_sequences": 4,
                             "max_best_of": 2, "version": EMULATED_VERSION, "sha": "sagetwin-emulation"})
        else:
            self._send(200, b"" if self.path == "/health" else b'{"status": "Healthy"}\n')

    def do_POST(self) -> None:  # noqa: N802
        body = self._read_body()
        if body is None:
            return
        if self.state.generator is None or self.state.settings is None:
            self._json(503, {"error": self.state.load_error or "model is loading", "error_type": "unhealthy"})
            return
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("expected a JSON object")
        except ValueError as exc:
            self._json(422, {"error": f"Failed to deserialize the JSON body into the target type: {exc}",
                             "error_type": "validation"})
            return
        try:
            with self.state.lock:
                self._route(payload)
        except TgiError as error:
            self._error(error)
        except Exception as exc:  # never let one request take the server down
            traceback.print_exc()
            self._json(500, {"error": f"{type(exc).__name__}: {exc}", "error_type": "generation"})

    def _route(self, payload: dict[str, Any]) -> None:
        path, chat = self.path, "messages" in payload
        if path == "/v1/chat/completions" or (path == "/invocations" and chat):
            self._chat(payload)
        elif path in ("/generate", "/generate_stream", "/invocations"):
            stream = path == "/generate_stream" or (path == "/invocations" and bool(payload.get("stream")))
            self._generate(payload, stream, as_list=path == "/invocations")
        else:
            self._json(404, {"error": f"no route POST {path}", "error_type": "not_found"})

    def _generate(self, payload: dict[str, Any], stream: bool, as_list: bool) -> None:
        generator, prompt = self.state.generator, payload.get("inputs")
        assert generator is not None and self.state.settings is not None
        request = validate(prompt, payload.get("parameters") or {}, generator.tokenizer, self.state.settings)
        if stream:
            self._events(answers.stream_event(g, token, prompt) for g, token in generator.generate(request))
            return
        answer = answers.generate_response(generator, prompt, generator.run(request))
        self._json(200, [answer] if as_list else answer)

    def _chat(self, payload: dict[str, Any]) -> None:
        generator = self.state.generator
        assert generator is not None and self.state.settings is not None
        _, request = answers.chat_request(payload, generator, self.state.settings)
        if payload.get("stream"):
            self._events((answers.chat_chunk(generator, g, token) for g, token in generator.generate(request)),
                         done=True)
            return
        self._json(200, answers.chat_completion(generator, generator.run(request)))

    def _events(self, events: Iterator[dict[str, Any]], done: bool = False) -> None:
        """Server-sent events in chunked transfer encoding, each sent as soon as it is made."""
        first = next(events)  # a failure before the first token is an error answer, not a stream
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            for event in _chain(first, events):
                send(f"data:{json.dumps(event)}\n\n".encode())
            if done:
                send(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client left mid-stream


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


def serve(model_dir: str, host: str, port: int, port_file: str | None = None) -> None:
    """Bind first (so /ping answers 503 while loading), then load and serve, as ``serving.serve``."""
    state = TgiState()
    server = make_server(host, port, state, TgiHandler)
    bound = announce_port(server, port_file)
    print(f"sagetwin-tgi: emulating TGI {EMULATED_VERSION}'s HTTP contract on http://{host}:{bound}", flush=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        generator = Generator(model_dir)  # SystemExit: refused before loading (too large), with the numbers
        state.settings = TgiSettings.from_env(dict(os.environ), generator.model_max, generator.device == "cuda")
        state.generator = generator
        state.handler = generator  # type: ignore[assignment]  # "loaded", for the base class
    except SystemExit as exc:
        print(exc.code, file=sys.stderr, flush=True)
        server.shutdown()
        raise SystemExit(3) from None
    except Exception as exc:
        state.load_error = f"model failed to load: {type(exc).__name__}: {exc}"
        traceback.print_exc()
        server.shutdown()
        raise SystemExit(3) from None
    print(f"sagetwin-tgi: {generator.model_id} loaded on {generator.device} (max_input_tokens "
          f"{state.settings.max_input_tokens}, max_total_tokens {state.settings.max_total_tokens}), ready", flush=True)
    thread.join()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a causal language model with TGI's HTTP contract.")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--port-file")
    args = parser.parse_args(argv)
    serve(args.model_dir, args.host, args.port, args.port_file)


if __name__ == "__main__":
    main()
