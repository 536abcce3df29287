"""The HTTP side of a model server on 127.0.0.1, as SageMaker's front end and MMS behave to a
client: ``GET /ping``, ``POST /invocations``, a JSON answer with the right status for every bad
request (400 / 403 / 405 / 408 / 411 / 413 / 431 / 503), and a server that keeps serving whatever
clients send: connections, buffered bodies and the time a request may take to arrive are all
bounded (``sagetwin.core.limits``), and requests from web pages are refused."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import traceback
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from sagetwin.core.limits import (
    MAX_PAYLOAD_BYTES,
    SERVER_MAX_HEADER_BYTES,
    SERVER_SMALL_BODY_BYTES,
    payload_too_large,
)
from sagetwin.emulation.bounded_server import (  # noqa: F401 - REASONS and error_body are this module's API too
    FRONT_TOKEN_HEADER,
    REASONS,
    DeadlineReader,
    HeaderLimit,
    ModelHTTPServer,
    RequestTimedOut,
    ServerLimits,
    error_body,
)

log = logging.getLogger("sagetwin.serving")
MAX_LENGTH_DIGITS = 18  # past any body size; int() of thousands of digits is refused (or slow)


class Invoker(Protocol):
    def invoke(self, body: bytes, headers: dict[str, str]) -> tuple[bytes, str]: ...


class PredictionError(Exception):
    """An error the model (or the handler's input parsing) reports to the client, with its status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ServerState:
    """What the request handler serves: the model's handler once loaded, or why it is not there."""

    def __init__(self) -> None:
        self.handler: Invoker | None = None
        self.load_error: str | None = None


def make_server(host: str, port: int, state: ServerState, handler_class: type[InvocationHandler] | None = None,
                limits: ServerLimits | None = None, *, behind_front: bool = False) -> ModelHTTPServer:
    limits = limits or ServerLimits.from_env()
    handler = type("BoundInvocationHandler", (handler_class or InvocationHandler,),
                   {"state": state, "timeout": limits.read_timeout_s})
    return ModelHTTPServer((host, port), handler, limits, behind_front=behind_front)


def announce_port(server: ModelHTTPServer, port_file: str | None) -> int:
    """The port ``server`` is bound to, written whole (by rename) to ``port_file``: with port 0
    the kernel picks a free one, and no other server can take it between a choice and the bind."""
    bound = server.server_address[1]
    if port_file:
        partial = f"{port_file}.{os.getpid()}.partial"
        with open(partial, "w") as file:
            file.write(str(bound))
        os.replace(partial, port_file)
    return bound


class InvocationHandler(BaseHTTPRequestHandler):
    """GET /ping and POST /invocations over ``state`` (set per server by ``make_server``)."""

    state: ServerState
    server: ModelHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: no new connection per prediction
    default_request_version = "HTTP/1.1"  # so even a garbled request line gets a status line back
    wbufsize = 64 * 1024  # status line, headers and body leave in one send

    def setup(self) -> None:
        self.connection = self.request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)  # no 40 ms delayed-ACK stall
        self.reader = DeadlineReader(self.connection, self.timeout, self.server.limits.request_deadline_s)
        self.rfile = io.BufferedReader(self.reader)
        self.wfile = self.connection.makefile("wb", self.wbufsize)
        self.held = 0  # body bytes this request holds of the server's budget

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # an answer still buffered for a client that left: nobody to send to
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug(format, *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every error as JSON (the stdlib sends HTML); methods the server lacks are 405, not 501."""
        if code == 501 and message and message.startswith("Unsupported method"):
            code, message = 405, f"method {self.command} is not allowed; use GET /ping or POST /invocations"
        elif code == 431:
            message = f"the request's headers are too large ({explain}); send at most {SERVER_MAX_HEADER_BYTES} bytes"
        self.close_connection = True
        self._send(code, error_body(code, message or explain or REASONS.get(code, "error")))

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: Iterable[tuple[str, str]] = ()) -> None:
        try:
            self.reader.settimeout(self.timeout)  # the reads may have left a request's last moments
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client left; nothing to answer

    def handle_one_request(self) -> None:
        self.reader.deadline = None  # the next request's time starts with its first byte
        self.command, self.requestline, self.request_version = "", "", self.default_request_version
        try:
            super().handle_one_request()
        except RequestTimedOut:
            self.close_connection = True
            self.send_error(408, f"the request was not received in time (it may take {self.timeout:g} s between "
                                 f"reads and {self.server.limits.request_deadline_s:g} s in all)")
        except ConnectionError:  # the client reset the connection: nobody to answer, nothing to report
            self.close_connection = True
        finally:
            if self.held:
                self.server.bodies.give(self.held)
                self.held = 0

    def parse_request(self) -> bool:
        """The stdlib's parse, within a header size, then the guard against web pages."""
        rfile = self.rfile
        self.rfile = HeaderLimit(rfile, SERVER_MAX_HEADER_BYTES)  # type: ignore[assignment]
        try:
            parsed = super().parse_request()
        finally:
            self.rfile = rfile
        if parsed and (why := self._refusal()):
            self.send_error(403, why)
            return False
        return parsed

    def handle_expect_100(self) -> bool:
        if why := self._refusal():  # before inviting the body
            self.send_error(403, why)
            return False
        super().handle_expect_100()
        self.wfile.flush()
        return True

    def _refusal(self) -> str | None:
        """Why a request looks like a web page's (DNS rebinding makes any page same-origin with a
        name that resolves here; its browser still names that host, and sends Origin on POST)."""
        origin = self.headers.get("Origin")
        if origin is not None:
            return (f"requests from web pages are refused (this one carries Origin: {origin[:100]!r}); call the "
                    "endpoint from a program (the SDK, boto3, curl)")
        if not (self.command == "GET" and self.path == "/ping") and not self.server.from_front(
                self.headers.get(FRONT_TOKEN_HEADER)):  # /ping: what Docker's health checks ask, unsigned
            return "this container answers its endpoint's runtime front only; call the endpoint's address"
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1 or (hosts and not self.server.host_allowed(hosts[0])):
            port = self.server.server_address[1]
            return (f"requests for host {', '.join(hosts)[:100]!r} are refused; this server answers "
                    f"127.0.0.1:{port} and localhost:{port} only")
        return None

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
        if length > SERVER_SMALL_BODY_BYTES:
            budget = self.server.bodies
            if not budget.take(length, self.server.limits.body_wait_s):
                self.send_error(503, f"the server holds its limit of {budget.total} bytes of request bodies "
                                     "in flight; retry shortly")
                return None
            self.held = length
        body = self.rfile.read(length)  # RequestTimedOut: answered 408 by handle_one_request
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
