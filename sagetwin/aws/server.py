"""The twin's HTTP server: a WSGI app on 127.0.0.1 with HTTP/1.1 keep-alive, and its guard
applied as requests arrive.

Werkzeug's development server (moto's own) closes the connection after every response, so each
call of an AWS client pays a new TCP connection and a new thread; over a run of InvokeEndpoint
calls that is ~1.5 ms of the twin's ~4 ms. waitress keeps connections open and answers from a
fixed pool of threads. Everything runs on one loop thread that this class starts and stops.

The guard is in place before the loop accepts a connection, and runs on each request's headers
before its body is read: a caller without the twin's secrets cannot make it store a byte of a
body, hold a thread, or keep more than a small share of the connections for long.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sagetwin.aws.guard import Guard
from sagetwin.aws.refusals import Refusal, refusal
from sagetwin.core.errors import ConfigurationError
from sagetwin.emulation.peers import from_owner

THREADS = 32  # concurrent requests: long InvokeEndpoint calls must not hold up the SDK's polls
CONNECTION_LIMIT = 1000  # keep-alive pools of many SDK sessions and clients stay connected at once
IDLE_CONNECTION_TIMEOUT_S = 30
MAX_BODY_BYTES = 5 * 1024**3 + 64 * 1024**2  # S3's single PUT limit (5 GiB), with room for aws-chunked framing
# A connection that has not yet sent a request the guard verified is a stranger's until it does:
# it gets this long from its accept to do so, and strangers share this many connections (the
# oldest is closed for a newer one), so whatever they hold, the owner's calls get in.
STRANGER_DEADLINE_S = 10.0
STRANGER_CONNECTIONS = 64
# A request whose headers name a known key but whose signature covers the body (every service but
# S3) is pending until the body is in: its connection is not a stranger's (a flood of strangers must
# not close the owner's 6 MB InvokeEndpoint mid-upload), but such connections have their own share
# and a deadline, since key IDs are not secrets.
PENDING_DEADLINE_S = 60.0
PENDING_CONNECTIONS = 64
MAINTENANCE_INTERVAL_S = 1


def _with_raw_uri(app: Callable[..., Any]) -> Callable[..., Any]:
    """moto reads the undecoded path from ``RAW_URI`` (werkzeug's name; waitress calls it
    ``REQUEST_URI``) and decodes S3 keys itself: without it ``a%41`` became ``aA`` and a key
    with ``?`` was cut short."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if "REQUEST_URI" in environ:
            environ.setdefault("RAW_URI", environ["REQUEST_URI"])
        return app(environ, start_response)

    return wrapped


def _refusal_error(refused: Refusal) -> Any:
    """A waitress error whose response is the guard's refusal (the service's own error shape)."""
    from waitress.utilities import Error

    class Refused(Error):
        code = refused.status

        def to_response(self, ident: str | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
            return refused.status_line, list(refused.headers.items()), refused.body

    return Refused("")


def _parser_class(guard: Guard) -> type:
    """waitress's request parser, with the guard run the moment a request's headers are complete:
    a refused request is answered and its connection closed without reading its body."""
    from waitress.parser import HTTPRequestParser

    class GuardedParser(HTTPRequestParser):
        def __init__(self, adj: Any, channel: Any = None) -> None:
            super().__init__(adj)
            self.channel = channel
            self.refused: Refusal | None = None
            self.body_limit = MAX_BODY_BYTES

        def received(self, data: bytes) -> int:
            if self.refused is not None:
                return len(data)
            had_headers = self.headers_finished
            consumed = super().received(data)
            if self.headers_finished and not had_headers and self.error is None and not self.empty:
                headers = {name.lower().replace("_", "-"): value for name, value in self.headers.items()}
                length = None if self.chunked else self.content_length
                refused = guard.on_headers(self.command, self.request_uri, headers, length, self.vouch, self.pending)
                if refused is None:
                    self.body_limit = guard.body_limit(self.request_uri, headers)
                    return consumed
                self.refuse(refused)
                return len(data)
            if not self.completed and self.body_bytes_received > self.body_limit:  # a chunked body past its limit
                headers = {name.lower().replace("_", "-"): value for name, value in self.headers.items()}
                self.refuse(guard.on_headers(self.command, self.request_uri, headers, self.body_bytes_received)
                            or refusal("s3", "too-large"))
                return len(data)
            return consumed

        def vouch(self) -> None:
            if self.channel is not None:  # signed with a secret: the body may take as long as it takes
                self.channel.trusted = True

        def pending(self) -> None:
            if self.channel is not None and not self.channel.trusted:
                self.channel.pending_since = self.channel.pending_since or time.time()

        def refuse(self, refused: Refusal) -> None:
            self.refused, self.error, self.completed = refused, _refusal_error(refused), True
            self.expect_continue = False  # no "100 Continue": the body is not wanted
            self.connection_close = True
            if self.channel is not None:
                self.channel.discarding = True

    return GuardedParser


def _task_class() -> type:
    """waitress's WSGI task, telling the app which connection a request came on, so that a
    verified request can vouch for its connection."""
    from waitress.task import WSGITask

    class Task(WSGITask):
        def get_environment(self) -> dict[str, Any]:
            environ = super().get_environment()
            environ["sagetwin.connection"] = self.channel
            environ["sagetwin.close_after"] = lambda: setattr(self, "close_on_finish", True)
            return environ

    return Task


def _channel_class(guard: Guard) -> type:
    """waitress's channel, guarded (see ``_parser_class``), and with a request that has
    ``Expect: 100-continue`` and no body served at once. waitress answers "100 Continue" and then
    waits for a body that never comes (it marks the already complete request incomplete again),
    so ``put_object(Body=b"")``, which botocore sends that way, hung until the client's read
    timeout."""
    from waitress.channel import HTTPChannel

    parser = _parser_class(guard)
    task = _task_class()

    class Channel(HTTPChannel):
        task_class = task

        def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:  # noqa: A002
            self.trusted = False
            self.pending_since = 0.0  # when a request naming a known key began (see PENDING_CONNECTIONS)
            self.discarding = False
            self.parser_class = functools.partial(parser, channel=self)
            super().__init__(server, sock, addr, adj, map)
            if not from_owner(sock):  # another local user: closed before a byte of it is read
                self.handle_close()
                return
            _make_room_for(self, map)

        def received(self, data: bytes) -> bool:
            if self.discarding:  # the rest of a refused request's body: dropped as it comes
                return True
            return super().received(data)

        def send_continue(self) -> None:
            request = self.request
            if request is not None and request.completed and not request.chunked and request.content_length == 0:
                request.expect_continue = False  # nothing to continue with: the request is whole
                return
            super().send_continue()

    return Channel


def _strangers(connections: Any, pending: bool = False) -> list[Any]:
    """Connections that have not yet sent a verified request and have none being served, oldest
    first: those with no request naming a known key, or (``pending``) those with one."""
    found = [c for c in list(connections) if hasattr(c, "trusted") and not c.trusted and not c.requests
             and bool(c.pending_since) == pending]
    return sorted(found, key=lambda c: c.pending_since or c.creation_time)


def _make_room_for(channel: Any, connections: Any) -> None:
    """Strangers share ``STRANGER_CONNECTIONS``, pending requests ``PENDING_CONNECTIONS``: past
    that, the oldest are let go."""
    for pending, share in ((False, STRANGER_CONNECTIONS), (True, PENDING_CONNECTIONS)):
        waiting = _strangers(connections.values(), pending)
        for old in waiting[:max(0, len(waiting) - share)]:
            if old is not channel:
                old.handle_close()


def _server_class(base: type) -> type:
    class Server(base):  # type: ignore[misc, valid-type]
        def maintenance(self, now: float) -> None:
            """waitress's idle timeout, and strangers let go at their deadline."""
            super().maintenance(now)
            for channel in _strangers(self._map.values()):
                if now - channel.creation_time > STRANGER_DEADLINE_S:
                    channel.will_close = True
            for channel in _strangers(self._map.values(), pending=True):
                if now - channel.pending_since > PENDING_DEADLINE_S:
                    channel.will_close = True
            if len(_strangers(self._map.values(), pending=True)) > PENDING_CONNECTIONS:
                _make_room_for(None, self._map)

    return Server


class LoopbackServer:
    """``start()`` serves ``app`` on ``host:port`` (0: a free port) until ``stop()``. The
    ``guard`` learns the port before any connection is accepted."""

    def __init__(self, app: Callable[..., Any], host: str, guard: Guard, port: int = 0) -> None:
        try:
            from waitress.server import create_server
        except ImportError:
            raise ConfigurationError("the AWS twin needs waitress, which is not installed.",
                                     "pip install 'sagetwin[aws]'.") from None
        logging.getLogger("waitress").setLevel(logging.ERROR)  # no access or queue lines on the person's terminal
        server = create_server(_with_raw_uri(app), host=host, port=port, threads=THREADS, ident="sagetwin",
                               max_request_body_size=MAX_BODY_BYTES, clear_untrusted_proxy_headers=True,
                               connection_limit=CONNECTION_LIMIT, channel_timeout=IDLE_CONNECTION_TIMEOUT_S,
                               cleanup_interval=MAINTENANCE_INTERVAL_S)
        server.__class__ = _server_class(type(server))
        server.channel_class = _channel_class(guard)
        self._server = server
        self.port = int(server.effective_port)  # waitress gives the getnameinfo() string
        guard.port = self.port  # before the loop runs: nothing is read from a connection before this
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sagetwin aws", daemon=True)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def _serve(self) -> None:
        from waitress import wasyncore

        try:
            while not self._stopping.is_set():
                # poll, not select: select() fails outright once a descriptor passes 1024 (many connections)
                wasyncore.loop(timeout=1.0, map=self._server._map, use_poll=True, count=1)
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


def vouch_for_connection(environ: dict[str, Any]) -> None:
    """The request on this connection was verified: its caller holds a secret, not a stranger."""
    connection = environ.get("sagetwin.connection")
    if connection is not None:
        connection.trusted, connection.pending_since = True, 0.0


