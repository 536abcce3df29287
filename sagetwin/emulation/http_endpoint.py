"""Invoking a model server on this machine over HTTP (``POST /invocations``), keep-alive."""

from __future__ import annotations

import atexit
import http.client
import json
import sys
import threading
from collections.abc import Callable, Iterator

from sagetwin.core.errors import EndpointError, InvocationError
from sagetwin.core.limits import INVOCATION_TIMED_OUT, INVOCATION_TIMEOUT_S

CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"  # how the service hands CustomAttributes on


class HttpInvoker:
    """One persistent connection to ``host:port``; HTTP errors become InvocationError."""

    def __init__(self, name: str, host: str, port: int, *, alive: Callable[[], bool] = lambda: True,
                 log_hint: str = "", timeout: float = INVOCATION_TIMEOUT_S) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.alive = alive
        self.log_hint = log_hint
        self.timeout = timeout
        self._local = threading.local()  # one keep-alive connection per calling thread: never shared
        self.retired = False

    def _timed_out(self) -> InvocationError:
        """The runtime's timeout: status 0 (no answer from the container) and its own words, which
        the twin hands on as ``ModelError``."""
        return InvocationError(
            f"endpoint {self.name}: Received server error (0) from primary with message \"{INVOCATION_TIMED_OUT}\" "
            f"(after {self.timeout:g} s)",
            "make the prediction faster, or raise invocation_timeout (SageMaker allows 60 s).",
            status=0, body=INVOCATION_TIMED_OUT)

    def _request_headers(self, content_type: str, accept: str, custom_attributes: str | None) -> dict[str, str]:
        """The headers of an invocation, once the endpoint is known to be there."""
        if self.retired:
            raise EndpointError(f"endpoint {self.name} is deleted.", "deploy again to get a new endpoint.")
        headers = {"Content-Type": content_type, "Accept": accept}
        if custom_attributes:
            headers[CUSTOM_ATTRIBUTES_HEADER] = custom_attributes
        return headers

    def _not_answered(self) -> EndpointError:
        return EndpointError(f"endpoint {self.name} did not answer.", self.log_hint)

    def invoke(self, body: bytes, content_type: str, accept: str,
               custom_attributes: str | None = None) -> tuple[bytes, str]:
        headers = self._request_headers(content_type, accept, custom_attributes)
        for attempt in (1, 2):  # a keep-alive connection the server closed is retried once
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request("POST", "/invocations", body=body, headers=headers)
                response = self._conn.getresponse()
                break
            except TimeoutError:
                self.close()  # the answer may still come on this connection: never reuse it
                raise self._timed_out() from None
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt == 2 or not self.alive():
                    raise self._not_answered() from None
        try:
            payload = response.read()
        except TimeoutError:
            self.close()
            raise self._timed_out() from None
        except (ConnectionError, http.client.HTTPException):  # begun, then cut short: the server ran the
            self.close()  # request, so it is never sent again
            raise EndpointError(f"endpoint {self.name}'s answer was cut short.", self.log_hint) from None
        answer_type = response.getheader("Content-Type", "application/json")
        if response.status >= 400:
            raise self._answer_error(response.status, payload)
        return payload, answer_type

    def _answer_error(self, status: int, payload: bytes) -> InvocationError:
        try:
            message = json.loads(payload).get("message", payload.decode())
        except (ValueError, AttributeError):
            message = payload.decode("utf-8", "replace")
        if status == 408 and INVOCATION_TIMED_OUT in str(message):  # a runtime front's timeout
            return self._timed_out()
        return InvocationError(
            f"endpoint {self.name} answered HTTP {status}: {message}",
            'send JSON such as {"inputs": "text"} with content type application/json.',
            status=status, body=payload.decode("utf-8", "replace"),
        )

    def stream(self, body: bytes, content_type: str, accept: str, custom_attributes: str | None = None
               ) -> tuple[Iterator[bytes], str]:
        """The answer to ``POST /invocations`` piece by piece as the server sends it, and its
        content type, on a connection of its own (closed after); an error status raises
        InvocationError before any piece."""
        headers = self._request_headers(content_type, accept, custom_attributes)
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            if response.status >= 400:
                raise self._answer_error(response.status, response.read())
        except TimeoutError:
            connection.close()
            raise self._timed_out() from None
        except (ConnectionError, http.client.HTTPException):
            connection.close()
            raise self._not_answered() from None
        except BaseException:
            connection.close()
            raise
        return _pieces(connection, response), response.getheader("Content-Type", "application/octet-stream")

    @property
    def _conn(self) -> http.client.HTTPConnection | None:
        return getattr(self._local, "connection", None)

    @_conn.setter
    def _conn(self, connection: http.client.HTTPConnection | None) -> None:
        self._local.connection = connection

    def retire(self) -> None:
        """The endpoint is gone: close the connection and refuse further invocations."""
        self.retired = True
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _pieces(connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The body as it arrives; one cut short (the server gone mid-answer) raises IncompleteRead."""
    try:
        while piece := response.read1(64 * 1024):
            yield piece
        if response.length:  # a Content-Length body that ended early: read1 returns b"" then
            raise http.client.IncompleteRead(b"", response.length)
    finally:
        connection.close()


class LocalHttpEndpoint:
    """An endpoint served on this machine: invocations over HTTP, released once on delete.

    Every live one is also released when Python exits, so a Predictor nobody deleted still
    stops its server or containers (threading's exit hooks run before non-daemon threads are
    joined, which the SDK's serving thread would otherwise block).
    """

    _live: set[LocalHttpEndpoint] = set()

    def __init__(self, name: str, host: str, port: int, **invoker_options: object) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self.deleted = False
        self._http = HttpInvoker(name, host, port, **invoker_options)  # type: ignore[arg-type]
        LocalHttpEndpoint._live.add(self)

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        return self._http.invoke(body, content_type, accept)

    def stream(self, body: bytes, content_type: str, accept: str, custom_attributes: str | None = None
               ) -> tuple[Iterator[bytes], str]:
        return self._http.stream(body, content_type, accept, custom_attributes)

    def invoke_with_attributes(self, body: bytes, content_type: str, accept: str, custom_attributes: str
                               ) -> tuple[bytes, str]:
        return self._http.invoke(body, content_type, accept, custom_attributes)

    def delete(self) -> None:
        """Marked deleted only once released: a delete that failed can be retried."""
        if self.deleted:
            return
        self._http.retire()
        self._release()  # on failure it stays live: a retry, or the exit hook, tries again
        self.deleted = True
        LocalHttpEndpoint._live.discard(self)

    def _release(self) -> None:
        """Stop whatever serves this endpoint (subclasses)."""
        raise NotImplementedError


def _release_forgotten_endpoints() -> None:
    """At exit: every endpoint is tried; one that cannot be released is named, and the rest go on."""
    for endpoint in list(LocalHttpEndpoint._live):
        try:
            endpoint.delete()
        except Exception as exc:
            print(f"sagetwin: endpoint {endpoint.name} could not be released at exit: {exc}", file=sys.stderr)


getattr(threading, "_register_atexit", atexit.register)(_release_forgotten_endpoints)
