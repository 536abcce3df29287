"""Invoking a model server on this machine over HTTP (``POST /invocations``), keep-alive."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable

from sagetwin.core.errors import EndpointError, InvocationError


class HttpInvoker:
    """One persistent connection to ``host:port``; HTTP errors become InvocationError."""

    def __init__(self, name: str, host: str, port: int, *, alive: Callable[[], bool] = lambda: True,
                 log_hint: str = "", timeout: float = 300) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.alive = alive
        self.log_hint = log_hint
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        headers = {"Content-Type": content_type, "Accept": accept}
        for attempt in (1, 2):  # a keep-alive connection the server closed is retried once
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request("POST", "/invocations", body=body, headers=headers)
                response = self._conn.getresponse()
                payload = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt == 2 or not self.alive():
                    raise EndpointError(f"endpoint {self.name} did not answer.", self.log_hint) from None
        answer_type = response.getheader("Content-Type", "application/json")
        if response.status >= 400:
            try:
                message = json.loads(payload).get("message", payload.decode())
            except (ValueError, AttributeError):
                message = payload.decode("utf-8", "replace")
            raise InvocationError(
                f"endpoint {self.name} answered HTTP {response.status}: {message}",
                'send JSON such as {"inputs": "text"} with content type application/json.',
                status=response.status, body=payload.decode("utf-8", "replace"),
            )
        return payload, answer_type

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
