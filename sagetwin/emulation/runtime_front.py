"""SageMaker Runtime's side of an endpoint, before a serving container on this machine.

On AWS a client never reaches the container: InvokeEndpoint checks the request (a body of at
most 6 MB, a Content-Length) and answers a bad one itself, with a JSON error. A container's own
server (the DLC's multi-model-server) answers some bad requests without JSON, or not at all, so
clients of a local endpoint would see answers AWS never gives. The front listens on 127.0.0.1,
answers what the runtime answers itself, and passes good requests and the container's answers
through unchanged.
"""

from __future__ import annotations

import http.client
import threading

from sagetwin.emulation.http_server import (
    InvocationHandler,
    ModelHTTPServer,
    PredictionError,
    ServerState,
    error_body,
    make_server,
)

# per hop, never forwarded (RFC 9110 7.6.1); the body goes on with its own Content-Length
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
              "host", "content-length", "expect"}
TIMED_OUT = ("Received server error (0) from primary with message \"Your invocation timed out while waiting for a "
             "response from container primary.\"")


class Upstream:
    """The container's server, one keep-alive connection per calling thread (one per client connection)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._local = threading.local()

    def request(self, method: str, path: str, body: bytes, headers: dict[str, str]
                ) -> tuple[int, bytes, str]:
        """The container's status, body and content type; PredictionError when it did not answer."""
        for attempt in (1, 2):  # a kept-alive connection the container closed is retried once, fresh
            reused = self._connection is not None
            connection = self._connection or http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._connection = connection
            try:
                connection.request(method, path, body=body or None, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except TimeoutError:
                self.close()  # its answer may still come on this connection: never reuse it
                raise PredictionError(f"{TIMED_OUT} (after {self.timeout:g} s)", 408) from None
            except (ConnectionError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 1:
                    continue
                raise PredictionError(f"the serving container did not answer ({type(exc).__name__}); "
                                      "see `docker logs` of the serving container", 502) from None
            if response.will_close:
                self.close()
            return response.status, payload, response.getheader("Content-Type", "application/json")
        raise AssertionError("unreachable")

    def invoke(self, body: bytes, headers: dict[str, str]) -> tuple[bytes, str]:
        """POST /invocations with the client's end-to-end headers; an error answer goes back as it is."""
        forwarded = {name: value for name, value in headers.items() if name.lower() not in HOP_BY_HOP}
        status, payload, content_type = self.request("POST", "/invocations", body, forwarded)
        if status >= 400:
            raise PredictionError(payload.decode("utf-8", "replace"), status, body=payload, content_type=content_type)
        return payload, content_type

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
    """The checks of ``InvocationHandler``; what passes them goes to the container (``state.handler``
    is the Upstream), whose answer goes back as it is. /ping asks the container too."""

    upstream: Upstream

    def do_GET(self) -> None:  # noqa: N802
        if self.path != "/ping" or self.state.handler is None:
            super().do_GET()
            return
        try:
            status, payload, content_type = self.upstream.request("GET", "/ping", b"", {})
        except PredictionError as exc:
            status, payload, content_type = exc.status, error_body(exc.status, exc.message), "application/json"
        self._send(status, payload, content_type)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.upstream.close()  # the client left: so does this connection's one to the container


class RuntimeFront:
    """A front on ``host:port`` (0: any free port) for a container server on ``upstream_port``.

    It answers 503 until ``ready()``: a client that calls early gets what SageMaker answers for an
    endpoint still being created, not a refused connection.
    """

    def __init__(self, host: str, port: int, upstream_port: int, timeout: float) -> None:
        self.state = ServerState()
        self.upstream = Upstream("127.0.0.1", upstream_port, timeout)
        handler = type("BoundRuntimeFrontHandler", (RuntimeFrontHandler,), {"upstream": self.upstream})
        self.server: ModelHTTPServer = make_server(host, port, self.state, handler)
        self.host, self.port = host, self.server.server_address[1]
        self.state.load_error = "the endpoint is being created"
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
