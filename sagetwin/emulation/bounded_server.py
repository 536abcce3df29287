"""The socket side of the model server and the runtime front: connections served by reused
threads and bounded in number, body bytes held at once, the time a request may take to arrive
and the size of its headers (``sagetwin.core.limits``), so that no client can exhaust the server
another client (or the AWS twin forwarding InvokeEndpoint) needs; connections from other local
users are refused before they are read (``peers``). The HTTP answers are in
``http_server``."""

from __future__ import annotations

import collections
import hmac
import http.client
import io
import json
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from sagetwin.core.limits import (
    SERVER_BODY_WAIT_S,
    SERVER_MAX_BUFFERED_BYTES,
    SERVER_MAX_CONNECTIONS,
    SERVER_READ_TIMEOUT_S,
    SERVER_REQUEST_DEADLINE_S,
)
from sagetwin.emulation.peers import from_owner

LISTEN_BACKLOG = 128
LINGER_S = 1.0  # how long a refused connection stays open for its 503 to be read
MAX_LINGERING = 256  # refused connections kept open at once; past that the oldest is closed
IDLE_WORKER_S = 60.0  # a worker thread with no connection for this long ends (a burst's threads don't stay)
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
# A server behind a runtime front answers only requests carrying the front's secret (given to the
# container in its environment): the container's published port is open to every local user.
FRONT_TOKEN_HEADER = "X-Sagetwin-Front-Token"
FRONT_TOKEN_ENV = "SAGETWIN_FRONT_TOKEN"
REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed", 408: "RequestTimeout",
           411: "LengthRequired", 413: "PayloadTooLarge", 431: "RequestHeaderFieldsTooLarge",
           500: "InternalServerException", 503: "ServiceUnavailable", 505: "HTTPVersionNotSupported"}


def error_body(status: int, message: str) -> bytes:
    """MMS's error JSON."""
    return json.dumps({"code": status, "type": REASONS.get(status, "Error"), "message": message}).encode()


@dataclass(frozen=True)
class ServerLimits:
    """What one server grants all its clients together (defaults and reasons: ``sagetwin.core.limits``)."""

    max_connections: int = SERVER_MAX_CONNECTIONS
    max_buffered_bytes: int = SERVER_MAX_BUFFERED_BYTES
    body_wait_s: float = SERVER_BODY_WAIT_S
    request_deadline_s: float = SERVER_REQUEST_DEADLINE_S
    read_timeout_s: float = SERVER_READ_TIMEOUT_S

    @classmethod
    def from_env(cls) -> ServerLimits:
        """The defaults, each overridable by a ``SAGETWIN_SERVER_*`` variable (for tests and tight machines)."""
        env = os.environ.get
        return cls(int(env("SAGETWIN_SERVER_MAX_CONNECTIONS", SERVER_MAX_CONNECTIONS)),
                   int(env("SAGETWIN_SERVER_MAX_BUFFERED_BYTES", SERVER_MAX_BUFFERED_BYTES)),
                   float(env("SAGETWIN_SERVER_BODY_WAIT", SERVER_BODY_WAIT_S)),
                   float(env("SAGETWIN_SERVER_REQUEST_DEADLINE", SERVER_REQUEST_DEADLINE_S)),
                   float(env("SAGETWIN_SERVER_READ_TIMEOUT", SERVER_READ_TIMEOUT_S)))


class BodyBudget:
    """The bytes of large request bodies all requests in flight may hold together: a declared
    Content-Length is reserved before its body is read (the read allocates it whole)."""

    def __init__(self, total: int) -> None:
        self.total = self.left = total
        self._room = threading.Condition()

    def take(self, size: int, wait: float) -> bool:
        if size > self.total:
            return False  # it would never fit
        with self._room:
            if not self._room.wait_for(lambda: self.left >= size, timeout=wait):
                return False
            self.left -= size
            return True

    def give(self, size: int) -> None:
        with self._room:
            self.left += size
            self._room.notify_all()


class RequestTimedOut(Exception):
    """A request that started did not arrive whole in time (not a TimeoutError: the stdlib
    handler swallows those without an answer)."""


class DeadlineReader(io.RawIOBase):
    """A connection's reads: none waits longer than ``read_timeout``, and all reads of one request
    together end ``deadline_s`` after its first byte, so a sender trickling bytes is let go too."""

    def __init__(self, sock: socket.socket, read_timeout: float, deadline_s: float) -> None:
        self.sock, self.read_timeout, self.deadline_s = sock, read_timeout, deadline_s
        self.deadline: float | None = None  # set by the request's first byte; None between requests
        self.timeout: float | None = None  # the socket's, set only when it changes (a system call)

    def settimeout(self, timeout: float) -> None:
        if timeout != self.timeout:
            self.sock.settimeout(timeout)
            self.timeout = timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wait = self.read_timeout
        if self.deadline is not None:
            wait = min(wait, self.deadline - time.monotonic())
            if wait <= 0:
                raise RequestTimedOut
        self.settimeout(wait)
        try:
            received = self.sock.recv_into(buffer)
        except TimeoutError:
            if self.deadline is None:
                raise  # an idle kept-alive connection: closed without a word, as before
            raise RequestTimedOut from None
        if received and self.deadline is None:
            self.deadline = time.monotonic() + self.deadline_s
        return received


class HeaderLimit:
    """The file ``http.client.parse_headers`` reads, ending a header block past ``left`` bytes."""

    def __init__(self, rfile: io.BufferedIOBase, left: int) -> None:
        self.rfile, self.left = rfile, left

    def readline(self, size: int = -1) -> bytes:
        line = self.rfile.readline(size)
        self.left -= len(line)
        if self.left < 0:
            raise http.client.LineTooLong("header block")
        return line


def at_end(sock: socket.socket) -> bool:
    """Whether a non-blocking socket's peer has closed (or failed); what it sent is dropped."""
    try:
        for _ in range(16):
            if not sock.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    return False


class ModelHTTPServer(HTTPServer):
    """An HTTP server whose connections are served by reused threads, at most ``max_connections``
    at once: a new connection costs a queue hand-off, not a thread start (which waits for the GIL
    while the model computes), and one past the limit gets a 503 from the accepting thread."""

    request_queue_size = LISTEN_BACKLOG  # bursts of connections queue instead of being refused

    def __init__(self, address: tuple[str, int], handler_class: type[BaseHTTPRequestHandler],
                 limits: ServerLimits, *, behind_front: bool = False) -> None:
        """``behind_front``: a server in a container whose port is published on the host's 127.0.0.1
        for a runtime front. The peer is Docker's proxy, whoever connected: requests are answered
        only with the front's secret (``FRONT_TOKEN_ENV``), the front having checked who connects;
        the Host names the published port, so any port is let by (the name must still be a
        loopback one: a web page's DNS rebinding names its own)."""
        self.limits = limits
        self.behind_front = behind_front
        self.front_token = os.environ.get(FRONT_TOKEN_ENV, "") if behind_front else ""
        if behind_front and len(self.front_token) < 16:
            raise SystemExit(f"a server behind a runtime front needs the front's secret in {FRONT_TOKEN_ENV}")
        self.bodies = BodyBudget(limits.max_buffered_bytes)
        self._lock = threading.Lock()
        self._handoff: queue.SimpleQueue[tuple[socket.socket, Any] | None] = queue.SimpleQueue()
        self._active = self._idle = self._workers = 0  # idle: waiting workers no connection was promised to
        self._lingering: collections.deque[tuple[float, socket.socket]] = collections.deque()  # refused, closing
        busy = error_body(503, f"the server is serving its limit of {limits.max_connections} connections at "
                               "once; retry shortly")
        self._busy_answer = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(busy)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
                             ).encode() + busy
        stranger = error_body(403, "this endpoint serves only the user who started it (its model runs as that "
                                   "user); call it as that user")
        self._stranger_answer = (f"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                                 f"Content-Length: {len(stranger)}\r\nConnection: close\r\n\r\n").encode() + stranger
        super().__init__(address, handler_class)
        port = self.server_address[1]
        self.hosts = frozenset({*LOOPBACK_NAMES, *(f"{name}:{port}" for name in LOOPBACK_NAMES)})

    def from_front(self, token: str | None) -> bool:
        """Whether a request carrying ``token`` came through the runtime front (always, when not behind one)."""
        return not self.behind_front or hmac.compare_digest((token or "").encode(), self.front_token.encode())

    def host_allowed(self, host: str) -> bool:
        """Whether a request naming ``host`` may be answered (see ``behind_front``)."""
        host = host.strip().lower()
        if self.behind_front:
            name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
            return name in LOOPBACK_NAMES and (not port or port.isdigit())
        return host in self.hosts

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.behind_front and not from_owner(request):  # another local user: closed before a byte of it is read
            self._refuse(request, self._stranger_answer)
            return
        start = False
        with self._lock:
            refuse = self._active >= self.limits.max_connections
            if not refuse:
                self._active += 1
                start = self._idle == 0  # else a waiting worker takes it
                if start:
                    self._workers += 1
                else:
                    self._idle -= 1
        if refuse:
            self._refuse(request, self._busy_answer)
            return
        self._handoff.put((request, client_address))
        if start:
            threading.Thread(target=self._work, name=f"sagetwin-http-{self.server_address[1]}", daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                item = self._handoff.get(timeout=IDLE_WORKER_S)
            except queue.Empty:
                with self._lock:
                    if self._idle == 0:
                        continue  # every waiting worker was promised a connection: this one may get it
                    self._idle -= 1
                    self._workers -= 1
                return
            if item is None:
                return
            request, client_address = item
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
                with self._lock:
                    self._active -= 1
                    self._idle += 1

    def _refuse(self, request: socket.socket, answer: bytes) -> None:
        """An answer (503, 403) without reading the request, never blocking the accepting thread. The socket stays
        open a moment (``service_actions``): closed at once, the request the client sends next
        would be answered by a reset, which reaches it before the 503 does."""
        try:
            request.setblocking(False)
            request.send(answer)
            request.shutdown(socket.SHUT_WR)
        except OSError:
            request.close()
            return
        if len(self._lingering) >= MAX_LINGERING:
            self._lingering.popleft()[1].close()
        self._lingering.append((time.monotonic() + LINGER_S, request))

    def service_actions(self) -> None:
        """Between connections (and at least every half second): close refused sockets whose
        client has closed, or whose moment is over; what they sent is read and dropped."""
        now = time.monotonic()
        for _ in range(len(self._lingering)):
            until, request = self._lingering.popleft()
            if until < now or at_end(request):
                request.close()
            else:
                self._lingering.append((until, request))

    def server_close(self) -> None:
        super().server_close()
        while self._lingering:
            self._lingering.popleft()[1].close()
        with self._lock:
            workers = self._workers
        for _ in range(workers):
            self._handoff.put(None)  # each ends once its connection is done
