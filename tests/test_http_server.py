"""The local model server answers every bad request with JSON and the right status, bounds what
all clients together can hold (connections, buffered bodies, the time a request takes to arrive),
refuses web pages, and keeps serving (SageMaker's front end and MMS alike)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from sagetwin.core.limits import MAX_PAYLOAD_BYTES
from sagetwin.emulation.http_server import PredictionError, ServerState, make_server
from sagetwin.emulation.runtime_front import RuntimeFront


class Echo:
    def invoke(self, body: bytes, headers: dict[str, str]) -> tuple[bytes, str]:
        data = json.loads(body)
        if "inputs" not in data:
            raise PredictionError("no inputs", 400)
        return json.dumps([{"label": "ECHO", "score": 1.0, "n": len(data["inputs"])}]).encode(), "application/json"


KINDS = ["model server", "runtime front"]


@contextlib.contextmanager
def serving(kind: str) -> Iterator[int]:
    """The model server's port, or that of a runtime front before it (as a local endpoint has);
    both read their limits from SAGETWIN_SERVER_* as they start."""
    state = ServerState()
    state.handler = Echo()
    httpd = make_server("127.0.0.1", 0, state)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        if kind == "model server":
            yield httpd.server_address[1]
        else:
            front = RuntimeFront("127.0.0.1", 0, httpd.server_address[1], timeout=10)
            front.ready()
            try:
                yield front.port
            finally:
                front.close()
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(params=KINDS)
def server(request, monkeypatch):
    monkeypatch.setenv("SAGETWIN_SERVER_READ_TIMEOUT", "1")
    with serving(request.param) as port:
        yield port


def raw(port: int, data: bytes, wait: float = 5) -> tuple[int, dict]:
    """Send bytes as they are; return the status and the JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        return answer(sock)


def answer(sock: socket.socket, received: bytes = b"") -> tuple[int, dict]:
    """The status and JSON body of the answer on ``sock`` (of which ``received`` came already)."""
    while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) < _length(received):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def post(length: str, body: bytes = b"", host: str = "127.0.0.1") -> bytes:
    return (f"POST /invocations HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode() + body


def alive(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/invocations", body=b'{"inputs": "ok"}', headers={"Content-Type": "application/json"})
    return conn.getresponse().status == 200


@pytest.mark.parametrize(("request_bytes", "status"), [
    (post("abc"), 400),
    (post("-1"), 400),
    (post(str(10 ** 12)), 413),
    (post("0").replace(b"Content-Length: 0", b"Content-Length: \xb2"), 400),  # '²' in latin-1: isdigit() says yes
    (post("9" * 5000), 400),  # more digits than int() converts
    (post(str(MAX_PAYLOAD_BYTES + 1)), 413),
    (b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 411),
    (b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n", 411),
    (b"DELETE /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405),
    (b"BREW /pot HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405),
    (b"this is not http\r\n\r\n", 400),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),  # the HTTP/2 preface: HTTP's own answer is a 5xx
    (b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404),
    (post("8", b'{"a": 1}'), 400),  # the model's own client error
    (post("2", b"{}").replace(b"Content-Length", b"".join(  # 80 KB of headers: past the 64 KB a request may hold
        f"X-Big-{n}: {'a' * 8000}\r\n".encode() for n in range(10)) + b"Content-Length"), 431),
])
def test_bad_requests_get_json_and_the_right_status(server, request_bytes, status):
    got, body = raw(server, request_bytes)
    assert got == status and body["code"] == status and body["message"], body
    assert alive(server)


def test_a_slow_client_is_answered_408_and_released(server):
    got, body = raw(server, post("100", b'{"inputs": '), wait=10)  # 11 of 100 bytes, then nothing
    assert got == 408 and "not received in time" in body["message"]
    assert alive(server)


def test_a_burst_of_connections_is_served(server):
    def one(_: int) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
        conn.request("POST", "/invocations", body=b'{"inputs": "x"}', headers={"Content-Type": "application/json"})
        return conn.getresponse().status

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        assert set(pool.map(one, range(256))) == {200}


def server_threads() -> int:
    """Threads of the servers in this process (the test's own clients are named ``client-...``)."""
    return sum(not thread.name.startswith("client-") for thread in threading.enumerate())


@pytest.mark.parametrize("kind", KINDS)
def test_many_large_partial_bodies_hold_a_bounded_budget_and_others_are_still_served(kind, monkeypatch):
    """40 connections each declare 6 MB and send all but a byte: the server buffers at most its
    body budget (two bodies here), not 240 MB, and a normal client is answered meanwhile."""
    monkeypatch.setenv("SAGETWIN_SERVER_MAX_BUFFERED_BYTES", str(2 * MAX_PAYLOAD_BYTES))
    monkeypatch.setenv("SAGETWIN_SERVER_BODY_WAIT", "5")
    monkeypatch.setenv("SAGETWIN_SERVER_READ_TIMEOUT", "10")
    body = memoryview(b"x" * (MAX_PAYLOAD_BYTES - 1))
    with serving(kind) as port:
        threads_before = server_threads()
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=1) for _ in range(40)]

        def hold(sock: socket.socket) -> None:
            with contextlib.suppress(OSError):  # a body the server does not read yet: the send stalls
                sock.sendall(post(str(MAX_PAYLOAD_BYTES)))
                sock.sendall(body)  # a view of one buffer: the client holds no copies

        tracemalloc.start()
        try:
            holders = [threading.Thread(target=hold, args=(sock,), name=f"client-{n}")
                       for n, sock in enumerate(sockets)]
            for holder in holders:
                holder.start()
            for holder in holders:
                holder.join()
            _, peak = tracemalloc.get_traced_memory()
            threads = server_threads() - threads_before
            started = time.monotonic()
            assert raw(port, b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")[0] == 200
            assert alive(port)
            answered_in = time.monotonic() - started
        finally:
            tracemalloc.stop()
            for sock in sockets:
                sock.close()
    assert peak < 2 * MAX_PAYLOAD_BYTES + 8 * 1024 * 1024, f"{peak / 1e6:.0f} MB buffered"
    assert threads <= 40 + 2
    assert answered_in < 3


@pytest.mark.parametrize("kind", KINDS)
def test_connections_past_the_limit_get_a_quick_503_and_no_thread(kind, monkeypatch):
    monkeypatch.setenv("SAGETWIN_SERVER_MAX_CONNECTIONS", "8")
    monkeypatch.setenv("SAGETWIN_SERVER_READ_TIMEOUT", "10")
    with serving(kind) as port:
        threads_before = server_threads()
        held = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(8)]
        try:
            time.sleep(0.3)  # all eight accepted and being served (idle, waiting for a request)
            for _ in range(12):  # each sends its request at once, as clients do: the 503 must still arrive
                status, body = raw(port, post("16", b'{"inputs": "ok"}'), wait=2)
                assert status == 503 and body["code"] == 503 and "limit of 8 connections" in body["message"]
            assert server_threads() - threads_before <= 8
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.3)  # their slots are free again
        assert alive(port)


def trickle(port: int, data: bytes, interval: float, give_up: float) -> tuple[float, int | None, dict]:
    """Send ``data`` one byte per ``interval``: the seconds until the server answered, and its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=interval) as sock:
        started = time.monotonic()
        for byte in data:
            try:
                sock.sendall(bytes([byte]))
                first = sock.recv(65536)
            except TimeoutError:
                if time.monotonic() - started > give_up:
                    break
                continue
            sock.settimeout(5)
            return time.monotonic() - started, *answer(sock, first)
    return time.monotonic() - started, None, {}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("trickled", ["headers", "body"])
def test_a_sender_trickling_a_byte_a_second_is_cut_off_at_the_request_deadline(kind, trickled, monkeypatch):
    monkeypatch.setenv("SAGETWIN_SERVER_REQUEST_DEADLINE", "2")
    monkeypatch.setenv("SAGETWIN_SERVER_READ_TIMEOUT", "10")  # each byte comes well within this
    request = post("100", b'{"inputs": "' + b"x" * 86 + b'"}')
    head, body = request[:request.index(b"\r\n\r\n") + 4], request[request.index(b"\r\n\r\n") + 4:]
    with serving(kind) as port:
        if trickled == "headers":
            held, status, answered = trickle(port, request, 1.0, give_up=6)
        else:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(head)
                started = time.monotonic()
                status = None
                for byte in body:
                    sock.sendall(bytes([byte]))
                    try:
                        status, answered = answer(sock, sock.recv(65536))
                        break
                    except TimeoutError:
                        if time.monotonic() - started > 6:
                            break
                held = time.monotonic() - started
        assert status == 408, f"still held after {held:.1f} s"
        assert "2 s in all" in answered["message"] and 1.5 < held < 4
        assert alive(port)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("extra", "refused_for"), [
    ("Origin: http://evil.example\r\nHost: 127.0.0.1:{port}", "web pages"),
    ("Origin: null\r\nHost: localhost:{port}", "web pages"),
    ("Host: evil.example:{port}", "'evil.example:{port}'"),  # DNS rebinding: the page's own name
    ("Host: evil.example", "'evil.example'"),
    ("Host: 127.0.0.1:1", "'127.0.0.1:1'"),  # not this server's port
    ("Host: 127.0.0.1:{port}\r\nHost: evil.example", "are refused"),
    ("Host: 127.0.0.1:{port}\r\nExpect: 100-continue\r\nOrigin: http://evil.example", "web pages"),
])
def test_web_pages_and_foreign_hosts_are_refused_with_403(kind, extra, refused_for):
    with serving(kind) as port:
        request = (f"POST /invocations HTTP/1.1\r\n{extra.format(port=port)}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: 16\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)  # no body: a refusal must come before it (never a 100 Continue)
            status, body = answer(sock)
        assert status == 403 and body["code"] == 403 and body["type"] == "Forbidden"
        assert refused_for.format(port=port) in body["message"]
        assert alive(port)


@pytest.mark.parametrize("kind", KINDS)
def test_the_hosts_a_local_client_sends_are_served(kind):
    with serving(kind) as port:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}", "127.0.0.1", "localhost"):
            status, body = raw(port, post("16", b'{"inputs": "ok"}', host=host))
            assert status == 200 and body[0]["label"] == "ECHO", host
        status, _ = raw(port, b"GET /ping HTTP/1.0\r\n\r\n")  # HTTP/1.0 without a Host: no browser sends that
        assert status == 200
