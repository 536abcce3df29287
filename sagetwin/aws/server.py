"""The twin's HTTP server: a WSGI app on 127.0.0.1 with HTTP/1.1 keep-alive.

Werkzeug's development server (moto's own) closes the connection after every response, so each
call of an AWS client pays a new TCP connection and a new thread; over a run of InvokeEndpoint
calls that is ~1.5 ms of the twin's ~4 ms. waitress keeps connections open and answers from a
fixed pool of threads. Everything runs on one loop thread that this class starts and stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sagetwin.core.errors import ConfigurationError

THREADS = 32  # concurrent requests: long InvokeEndpoint calls must not hold up the SDK's polls
CONNECTION_LIMIT = 1000  # keep-alive pools of many SDK sessions and clients stay connected at once
IDLE_CONNECTION_TIMEOUT_S = 30
MAX_BODY_BYTES = 5 * 1024**3 + 1024**2  # S3's single PUT limit (5 GiB), with room for the request's own framing


def _with_raw_uri(app: Callable[..., Any]) -> Callable[..., Any]:
    """moto reads the undecoded path from ``RAW_URI`` (werkzeug's name; waitress calls it
    ``REQUEST_URI``) and decodes S3 keys itself: without it ``a%41`` became ``aA`` and a key
    with ``?`` was cut short."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if "REQUEST_URI" in environ:
            environ.setdefault("RAW_URI", environ["REQUEST_URI"])
        return app(environ, start_response)

    return wrapped


def _channel_class() -> type:
    """waitress's channel, except that a request with ``Expect: 100-continue`` and no body is
    served at once. waitress answers "100 Continue" and then waits for a body that never comes
    (it marks the already complete request incomplete again), so ``put_object(Body=b"")``, which
    botocore sends that way, hung until the client's read timeout."""
    from waitress.channel import HTTPChannel

    class Channel(HTTPChannel):
        def send_continue(self) -> None:
            request = self.request
            if request is not None and request.completed and not request.chunked and request.content_length == 0:
                request.expect_continue = False  # nothing to continue with: the request is whole
                return
            super().send_continue()

    return Channel


class LoopbackServer:
    """``start()`` serves ``app`` on ``host:port`` (0: a free port) until ``stop()``."""

    def __init__(self, app: Callable[..., Any], host: str, port: int = 0) -> None:
        try:
            from waitress.server import create_server
        except ImportError:
            raise ConfigurationError("the AWS twin needs waitress, which is not installed.",
                                     "pip install 'sagetwin[aws]'.") from None
        logging.getLogger("waitress").setLevel(logging.ERROR)  # no access or queue lines on the person's terminal
        self._server = create_server(_with_raw_uri(app), host=host, port=port, threads=THREADS, ident="sagetwin",
                                     max_request_body_size=MAX_BODY_BYTES, clear_untrusted_proxy_headers=True,
                                     connection_limit=CONNECTION_LIMIT, channel_timeout=IDLE_CONNECTION_TIMEOUT_S)
        self._server.channel_class = _channel_class()
        self.port: int = self._server.effective_port
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sagetwin aws", daemon=True)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def _serve(self) -> None:
        from waitress import wasyncore

        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=1.0, map=self._server._map, count=1)
        finally:  # closed here, in the loop's own thread: the map is never changed under it
            for channel in list(self._server._map.values()):
                channel.handle_close()
            self._server.task_dispatcher.shutdown(timeout=5)

    def stop(self) -> None:
        """Stop taking connections, close the open ones, let requests in flight finish (5 s)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._server.pull_trigger()  # wakes the loop from its wait
            self._thread.join(timeout=10)
        elif self._thread.ident is None:  # never started: only the listening socket to close
            for channel in list(self._server._map.values()):
                channel.handle_close()
            self._server.task_dispatcher.shutdown(timeout=0)
