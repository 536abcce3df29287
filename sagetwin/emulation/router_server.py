"""The HTTP side of the emulated Hugging Face containers whose router speaks JSON routes of its
own (TGI, TEI): SageMaker's ``GET /ping`` and ``POST /invocations``, the router's ``/health`` and
``/info``, errors as ``{"error", "error_type"}`` with the router's status, on the bounded server
the inference-toolkit emulation uses. A container's module gives its handler's ``info`` and
``route``, and its model loader, to ``serve``."""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from sagetwin.emulation.http_server import InvocationHandler, ServerState, announce_port, make_server

# what the TGI and TEI emulations read from their environment: on SageMaker only the model's own
# Environment sets them, so a process-backend server never takes them from the shell it started in
CONTAINER_SETTINGS = ("HF_MODEL_ID", "HF_MODEL_QUANTIZE", "HF_MODEL_TRUST_REMOTE_CODE", "MAX_BATCH_PREFILL_TOKENS",
                      "MAX_BEST_OF", "MAX_CLIENT_BATCH_SIZE", "MAX_INPUT_LENGTH", "MAX_INPUT_TOKENS",
                      "MAX_TOTAL_TOKENS", "MESSAGES_API_ENABLED", "POOLING", "QUANTIZE", "TRUST_REMOTE_CODE")
VERSION_ENV = "SAGETWIN_EMULATED_VERSION"  # the container version the image names, as the backend read it
# each emulated router's module (a ``DeploySpec.server``), run as ``python -m MODULE --model-dir ...``
READY_LINE = ": ready (pid "  # printed once the model is loaded: what a container's log is watched for
ROUTER_MODULES = {"tgi": "sagetwin.emulation.tgi_server", "tei": "sagetwin.emulation.tei_server"}


REJECTED = "Failed to deserialize the JSON body into the target type"  # a body of the wrong shape or types


class RouterError(Exception):
    """What the router answers instead of a result: its message, status and error type."""

    def __init__(self, message: str, status: int = 422, error_type: str = "validation") -> None:
        super().__init__(message)
        self.message, self.status, self.error_type = message, status, error_type


class RouterState(ServerState):
    def __init__(self) -> None:
        super().__init__()
        self.model: Any = None  # what the container's loader made, once loaded
        self.lock = threading.Lock()  # one request on the model at a time: a batch of one


class RouterHandler(InvocationHandler):
    """GET ``/ping``, ``/health``, ``/info``; POST routes given by ``route``."""

    state: RouterState
    unhealthy = "unhealthy"  # the router's own names for these errors, and a failure's status
    failed = ("generation", 500)

    def info(self) -> dict[str, Any]:
        raise NotImplementedError

    def route(self, path: str, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode())

    def _error(self, error: RouterError) -> None:
        if error.message.startswith(REJECTED):  # axum's JSON extractor answers before the router: plain text
            self._send(error.status, error.message.encode(), "text/plain; charset=utf-8")
        else:
            self._json(error.status, {"error": error.message, "error_type": error.error_type})

    def do_GET(self) -> None:  # noqa: N802
        if self.path not in ("/ping", "/health", "/info"):
            self._json(404, {"error": f"no route GET {self.path}", "error_type": "not_found"})
        elif self.state.model is None:
            self._json(503, {"error": self.state.load_error or "model is loading", "error_type": self.unhealthy})
        elif self.path == "/info":
            self._json(200, self.info())
        else:
            self._send(200, b"")

    def do_POST(self) -> None:  # noqa: N802
        body = self._read_body()
        if body is None:
            return
        if self.state.model is None:
            self._json(503, {"error": self.state.load_error or "model is loading", "error_type": self.unhealthy})
            return
        try:
            payload = json.loads(body)
        except ValueError as exc:  # as axum's JSON extractor answers: 400 for bad JSON, 422 for a bad shape
            self._send(400, f"Failed to parse the request body as JSON: {exc}".encode(), "text/plain")
            return
        if not isinstance(payload, dict):
            self._send(422, b"Failed to deserialize the JSON body into the target type: expected a map", "text/plain")
            return
        try:
            with self.state.lock:
                self.route(self.path, payload)
        except RouterError as error:
            self._error(error)
        except Exception as exc:  # never let one request take the server down
            traceback.print_exc()
            self._json(self.failed[1], {"error": f"{type(exc).__name__}: {exc}", "error_type": self.failed[0]})


def serve(name: str, describe: str, handler: type[RouterHandler], load: Callable[[], Any], host: str, port: int,
          port_file: str | None, behind_front: bool = False) -> None:
    """Bind first (so /ping answers 503 while loading), then ``load`` the model and serve. A
    SystemExit from ``load`` (refused before loading) is printed and ends the server."""
    state = RouterState()
    server = make_server(host, port, state, handler, behind_front=behind_front)
    bound = announce_port(server, port_file)
    print(f"{name}: {describe} on http://{host}:{bound}", flush=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        state.model = load()
        state.handler = state.model  # "loaded", for the base class
    except SystemExit as exc:
        print(exc.code, file=sys.stderr, flush=True)
        server.shutdown()
        raise SystemExit(3) from None
    except Exception as exc:
        state.load_error = f"model failed to load: {type(exc).__name__}: {exc}"
        traceback.print_exc()
        server.shutdown()
        raise SystemExit(3) from None
    print(f"{name}{READY_LINE}{os.getpid()})", flush=True)
    thread.join()


def main(argv: list[str] | None, name: str, describe: str, handler: type[RouterHandler],
         load: Callable[[str], Any]) -> None:
    """A container emulation's command line: ``--model-dir DIR [--host H] [--port P] [--port-file F]
    [--behind-front]`` (the last in a serving container, whose callers the runtime front checks)."""
    import argparse

    parser = argparse.ArgumentParser(description=f"Serve a model folder {describe}.")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--port-file")
    parser.add_argument("--behind-front", action="store_true",
                        help="in a container reached through sagetwin's runtime front, which checks callers")
    parser.add_argument("command", nargs="?", choices=["serve"],
                        help="what SageMaker passes a serving container (`docker run IMAGE serve`)")
    args = parser.parse_args(argv)
    if not os.environ.get("HF_MODEL_ID"):  # the TGI and TEI images' SageMaker entrypoint, before the launcher
        raise SystemExit("HF_MODEL_ID must be set")
    serve(name, describe, handler, lambda: load(args.model_dir), args.host, args.port, args.port_file,
          args.behind_front)
