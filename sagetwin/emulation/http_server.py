"""The HTTP side of a model server on 127.0.0.1, as SageMaker's front end and MMS behave to a
client: ``GET /ping``, ``POST /invocations``, a JSON answer with the right status for every bad
request (400 / 405 / 408 / 411 / 413), bounded memory and time per request, and a server that
keeps serving whatever a client sends."""

from __future__ import annotations

import json
import logging
import os
import traceback
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from sagetwin.core.limits import INVOCATION_TIMEOUT_S, MAX_PAYLOAD_BYTES, payload_too_large

log = logging.getLogger("sagetwin.serving")
LISTEN_BACKLOG = 128
MAX_LENGTH_DIGITS = 18  # past any body size; int() of thousands of digits is refused (or slow)
REASONS = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 408: "RequestTimeout",
           411: "LengthRequired", 413: "PayloadTooLarge", 500: "InternalServerException",
           503: "ServiceUnavailable"}


class Invoker(Protocol):
    def invoke(self, body: bytes, headers: dict[str, str]) -> tuple[bytes, str]: ...


class PredictionError(Exception):
    """An error the model (or the handler's input parsing) reports to the client, with its status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def error_body(status: int, message: str) -> bytes:
    """MMS's error JSON."""
    return json.dumps({"code": status, "type": REASONS.get(status, "Error"), "message": message}).encode()


class ServerState:
    """What the request handler serves: the model's handler once loaded, or why it is not there."""

    def __init__(self) -> None:
        self.handler: Invoker | None = None
        self.load_error: str | None = None


class ModelHTTPServer(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG  # bursts of connections queue instead of being refused
    daemon_threads = True


def make_server(host: str, port: int, state: ServerState,
                handler_class: type[InvocationHandler] | None = None) -> ModelHTTPServer:
    # per read of a request: a slow or stalled client is answered 408 and let go
    timeout = float(os.environ.get("SAGETWIN_SERVER_READ_TIMEOUT", INVOCATION_TIMEOUT_S))
    handler = type("BoundInvocationHandler", (handler_class or InvocationHandler,),
                   {"state": state, "timeout": timeout})
    return ModelHTTPServer((host, port), handler)


class InvocationHandler(BaseHTTPRequestHandler):
    """GET /ping and POST /invocations over ``state`` (set per server by ``make_server``)."""

    state: ServerState
    protocol_version = "HTTP/1.1"  # keep-alive: no new connection per prediction
    default_request_version = "HTTP/1.1"  # so even a garbled request line gets a status line back
    disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug(format, *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every error as JSON (the stdlib sends HTML); methods the server lacks are 405, not 501."""
        if code == 501 and message and message.startswith("Unsupported method"):
            code, message = 405, f"method {self.command} is not allowed; use GET /ping or POST /invocations"
        self.close_connection = True
        self._send(code, error_body(code, message or explain or REASONS.get(code, "error")))

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: Iterable[tuple[str, str]] = ()) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client left; nothing to answer

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except TimeoutError:
            self.close_connection = True
            if getattr(self, "command", None):  # a request had started: say so before closing
                self._send(408, error_body(408, "the request was not received in time"))
        except ConnectionError:  # the client reset the connection: nobody to answer, nothing to report
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802
        if self.path != "/ping":
            self._send(404, error_body(404, f"no route {self.path}; use GET /ping"))
        elif self.state.handler is not None:
            self._send(200, b'{"status": "Healthy"}\n')
        else:
            self._send(503, error_body(503, self.state.load_error or "model is loading"))

    def _read_body(self) -> bytes | None:
        """The request body within SageMaker's limits, or None once an error was answered."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(411, "send the body with a Content-Length (chunked bodies are not accepted)")
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            self.send_error(411, "Content-Length is required for POST /invocations")
            return None
        digits = raw.strip()
        if not (digits.isascii() and digits.isdigit() and len(digits) <= MAX_LENGTH_DIGITS):
            self.send_error(400, f"Content-Length must be a non-negative integer, not {raw[:40]!r}")
            return None
        length = int(digits)
        if length > MAX_PAYLOAD_BYTES:
            self.send_error(413, payload_too_large(length))  # closes: the body is never read
            return None
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self.send_error(408, "the request was not received in time")
            return None
        if len(body) < length:
            self.send_error(400, f"the body ended after {len(body)} of {length} bytes")
            return None
        return body

    def do_POST(self) -> None:  # noqa: N802
        body = self._read_body()
        if body is None:
            return
        if self.path != "/invocations":
            self._send(404, error_body(404, f"no route {self.path}; use POST /invocations"))
        elif self.state.handler is None:
            self._send(503, error_body(503, self.state.load_error or "model is loading"))
        else:
            self._invoke(body)

    def _invoke(self, body: bytes) -> None:
        try:
            payload, content_type = self.state.handler.invoke(body, dict(self.headers.items()))
        except PredictionError as exc:
            self._send(exc.status, error_body(exc.status, exc.message))
            return
        except Exception as exc:  # never let one request take the server down
            log.error("invocation failed: %s", traceback.format_exc())
            self._send(500, error_body(500, f"{type(exc).__name__}: {exc}"))
            return
        self._send(200, payload, content_type)
