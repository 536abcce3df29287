"""SageMaker Runtime's side of an endpoint, before a serving container on this machine.

On AWS a client never reaches the container: InvokeEndpoint checks the request (a body of at
most 6 MB, a Content-Length) and answers a bad one itself, with a JSON error. A container's own
server (the DLC's multi-model-server) answers some bad requests without JSON, or not at all, so
clients of a local endpoint would see answers AWS never gives. The front listens on 127.0.0.1,
answers what the runtime answers itself, and passes good requests and the container's answers
(status, body, end-to-end headers) through unchanged. It is the model server's HTTP side
(``http_server``), so it has the same bounds (connections, buffered bodies, the time a request may
take to arrive) and refuses web pages (an ``Origin``, a foreign ``Host``) before the container sees them.
"""

from __future__ import annotations

import http.client
import os
import secrets
import select
import threading
from collections.abc import Iterable, Iterator
from email.message import Message

from sagetwin.core.errors import ConfigurationError
from sagetwin.core.limits import INVOCATION_TIMED_OUT
from sagetwin.emulation.http_server import (
    FRONT_TOKEN_HEADER,
    InvocationHandler,
    ModelHTTPServer,
    PredictionError,
    ServerState,
    error_body,
    make_server,
)
from sagetwin.emulation.peers import peer_uid

# per hop, never forwarded either way (RFC 9110 7.6.1); bodies go on with their own Content-Length
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "host", "content-length", "expect",
              FRONT_TOKEN_HEADER.lower()}  # the front's own, never a client's
TIMED_OUT = f"Received server error (0) from primary with message \"{INVOCATION_TIMED_OUT}\""
Headers = list[tuple[str, str]]


def end_to_end(headers: Message) -> Headers:
    """The headers that go on to the next hop: not hop-by-hop, nor named in ``Connection``."""
    named = {token.strip().lower() for value in headers.get_all("Connection", []) for token in value.split(",")}
    # a folded (multi-line) value would be written on as more than one line: it is dropped
    return [(name, value) for name, value in headers.items()
            if name.lower() not in HOP_BY_HOP | named and "\r" not in value and "\n" not in value]


def closed_by_peer(connection: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection the container closed (readable with nothing asked is EOF)."""
    sock = connection.sock
    return sock is not None and bool(select.select([sock], [], [], 0)[0])


class Upstream:
    """The container's server, one keep-alive connection per calling thread (one per client connection)."""

    def __init__(self, host: str, port: int, timeout: float, token: str) -> None:
        self.host, self.port, self.timeout, self.token = host, port, timeout, token
        self._local = threading.local()

    def request(self, method: str, path: str, body: bytes, headers: Iterable[tuple[str, str]]
                ) -> tuple[int, bytes, Headers]:
        """The container's status, body and end-to-end headers; PredictionError when it did not answer."""
        response = self.open(method, path, body, headers)
        return response.status, self.read(response), end_to_end(response.msg)

    def open(self, method: str, path: str, body: bytes, headers: Iterable[tuple[str, str]]
             ) -> http.client.HTTPResponse:
        """The container's answer, its body not read yet (``read``, or ``pieces`` as it comes).

        A request is sent at most once: only a send that failed is repeated (on a new connection),
        never one the container may have received, which could run a prediction twice."""
        if self._connection is not None and closed_by_peer(self._connection):
            self.close()
        sent_headers = {**dict(headers), FRONT_TOKEN_HEADER: self.token}
        for attempt in (1, 2):
            connection = self._connection or self._connect()
            try:
                connection.request(method, path, body=body or None, headers=sent_headers)
            except (ConnectionError, http.client.HTTPException, TimeoutError) as exc:
                self.close()
                if attempt == 1:
                    continue
                raise self._not_answered(exc) from None
            try:
                return connection.getresponse()
            except Exception as exc:
                raise self._failed(exc) from None
        raise AssertionError("unreachable")

    def _connect(self) -> http.client.HTTPConnection:
        """A new connection, to the container's port only: a port another local user's program took
        (the container gone, say) never gets a request (Docker's proxy runs as root; rootless, as us)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.connect()
        except OSError as exc:
            raise self._not_answered(exc) from None
        owner = peer_uid(connection.sock)
        if owner not in (None, 0, os.geteuid()):  # None: no local socket (Docker's NAT), so no user's
            connection.close()
            raise PredictionError(f"port {self.port}, where the serving container was published, is held by "
                                  f"another user's program (uid {owner}); nothing was sent to it", 502)
        self._connection = connection
        return connection

    def read(self, response: http.client.HTTPResponse) -> bytes:
        try:
            payload = response.read()
        except Exception as exc:
            raise self._failed(exc) from None
        if response.will_close:
            self.close()
        return payload

    def pieces(self, response: http.client.HTTPResponse) -> Iterator[bytes]:
        """A streamed body (server-sent events) as the container sends it; PredictionError if it is cut short."""
        try:
            while piece := response.read1(64 * 1024):
                yield piece
        except Exception as exc:
            raise self._failed(exc) from None
        if response.will_close:
            self.close()

    def _failed(self, exc: Exception) -> Exception:
        """A container's answer that did not come (whole): its connection is never reused."""
        self.close()  # its answer may still come on this connection
        if isinstance(exc, TimeoutError):
            return PredictionError(f"{TIMED_OUT} (after {self.timeout:g} s)", 408)
        if isinstance(exc, (ConnectionError, http.client.HTTPException)):
            return self._not_answered(exc)
        return exc

    @staticmethod
    def _not_answered(exc: BaseException) -> PredictionError:
        return PredictionError(f"the serving container did not answer ({type(exc).__name__}); see `docker logs` of "
                               "the serving container", 502)

    def invoke(self, body: bytes, headers: dict[str, str]) -> tuple[bytes, str]:
        """The ``Invoker`` view, for a plain ``InvocationHandler``: a 200 answer, else PredictionError."""
        status, payload, answer_headers = self.request("POST", "/invocations", body, headers.items())
        if status >= 400:
            raise PredictionError(payload.decode("utf-8", "replace"), status)
        return payload, dict(answer_headers).get("Content-Type", "application/json")

    @property
    def _connection(self) -> http.client.HTTPConnection | None:
        return getattr(self._local, "connection", None)

    @_connection.setter
    def _connection(self, connection: http.client.HTTPConnection | None) -> None:
        self._local.connection = connection

    def close(self) -> None:
        """This thread's connection, closed (the next request opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class RuntimeFrontHandler(InvocationHandler):
    """The checks of ``InvocationHandler``; what passes them goes to the container, whose answer
    goes back as it is. /ping asks the container too, once the endpoint is ready."""

    upstream: Upstream

    def do_GET(self) -> None:  # noqa: N802
        if self.path != "/ping" or self.state.handler is None:
            super().do_GET()
        else:
            self._forward("GET", b"")

    def _invoke(self, body: bytes) -> None:
        self._forward("POST", body)

    def _forward(self, method: str, body: bytes) -> None:
        try:
            response = self.upstream.open(method, self.path, body, end_to_end(self.headers))
            headers = end_to_end(response.msg)
            if response.chunked:  # a stream (TGI's server-sent events): handed on as it comes
                self._relay(response.status, self.upstream.pieces(response), headers)
                return
            payload = self.upstream.read(response)
        except PredictionError as exc:
            self._send(exc.status, error_body(exc.status, exc.message))
            return
        content_type = next((value for name, value in headers if name.lower() == "content-type"), "application/json")
        self._send(status=response.status, body=payload, content_type=content_type,
                   headers=[(n, v) for n, v in headers if n.lower() != "content-type"])

    def _relay(self, status: int, pieces: Iterator[bytes], headers: Headers) -> None:
        """A chunked answer, each piece sent on once it arrives; one the container cut short is
        cut short here too (the connection closes without the last chunk), as the runtime ends a
        broken stream."""
        self.reader.settimeout(self.timeout)  # a client that stops reading fails the write, in time
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for piece in pieces:
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (PredictionError, OSError):
            self.close_connection = True  # the container stopped mid-answer, or the client left

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.upstream.close()  # the client left: so does this connection's one to the container


class RuntimeFront:
    """A front on ``host:port`` (0: any free port) for a container server on ``upstream_port``,
    listening from construction. It answers 503 until ``ready()``: a client that calls early gets
    what SageMaker answers for an endpoint still being created, not a refused connection."""

    def __init__(self, host: str, port: int, upstream_port: int, timeout: float) -> None:
        self.state = ServerState()
        self.state.load_error = "the endpoint is being created"
        self.token = secrets.token_urlsafe(32)  # the container's proof of a request from here (FRONT_TOKEN_ENV)
        self.upstream = Upstream("127.0.0.1", upstream_port, timeout, self.token)
        handler = type("BoundRuntimeFrontHandler", (RuntimeFrontHandler,), {"upstream": self.upstream})
        try:
            self.server: ModelHTTPServer = make_server(host, port, self.state, handler)
        except OSError as exc:
            raise ConfigurationError(f"port {port} on {host} cannot be listened on: {exc.strerror}.",
                                     "stop whatever listens there, or omit port= to let sagetwin choose one.") from None
        self.host, self.port = host, self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"sagetwin-front-{self.port}",
                                        daemon=True)
        self._thread.start()

    def ready(self) -> None:
        self.state.handler = self.upstream

    def close(self) -> None:
        """Stop listening; clients still connected get 503 for their next request."""
        self.state.handler, self.state.load_error = None, "the endpoint was deleted"
        self.server.shutdown()
        self.server.server_close()
