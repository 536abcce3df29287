"""The runtime front of a local endpoint: what SageMaker Runtime answers itself is answered with
JSON before the container sees it, and everything else passes through unchanged."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sagetwin.emulation.runtime_front import RuntimeFront
from tests.test_http_server import post, raw

MMS_MAX_REQUEST_SIZE = 6553500  # multi-model-server's default: it answers 413 itself, with no body


class MmsLike(BaseHTTPRequestHandler):
    """Answers as the DLC's multi-model-server does: a bare 413 without JSON for a large
    Content-Length, its own JSON errors, and the model's content type on success."""

    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]] = []
    delay = 0.0
    healthy = True
    close_when_idle = False

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = b'{"status": "Healthy"}' if self.healthy else b""
        self._answer(200 if self.healthy else 503, body, "application/json")

    def do_POST(self) -> None:  # noqa: N802
        type(self).seen.append(dict(self.headers.items()))
        length = int(self.headers["Content-Length"])
        if length > MMS_MAX_REQUEST_SIZE:
            self._answer(413, b"", "text/plain")
            return
        body = self.rfile.read(length)
        time.sleep(self.delay)
        if body == b"crash":  # a worker that dies mid-prediction: the connection closes, no answer
            self.close_connection = True
            return
        if body == b"reject":
            self._answer(400, b'{"code": 400, "type": "InternalServerException", "message": "bad input"}',
                         "application/json")
        else:
            self._answer(200, b"label,score\nPOSITIVE,0.9\n", "text/csv")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Amzn-SageMaker-Custom-Attributes", "answered-by=container")
        self.end_headers()
        try:
            self.wfile.write(body)
        except BrokenPipeError:  # the front gave up waiting (the timeout test): nobody to answer
            self.close_connection = True
            return
        self.close_connection = self.close_when_idle  # closed without saying so, as idle timeouts do


@pytest.fixture
def container() -> Iterator[tuple[int, type[MmsLike]]]:
    handler = type("Container", (MmsLike,), {"seen": [], "delay": 0.0, "healthy": True, "close_when_idle": False})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def front(container) -> Iterator[RuntimeFront]:
    running = RuntimeFront("127.0.0.1", 0, container[0], timeout=2)
    running.ready()
    yield running
    running.close()


def call(port: int, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    answer = response.status, response.read(), response.getheader("Content-Type")
    conn.close()
    return answer


def test_a_huge_content_length_is_answered_with_json_before_the_container_sees_it(container, front):
    with pytest.raises(json.JSONDecodeError):  # the container alone answers 413 with no JSON body
        raw(container[0], post(str(10 ** 12)))
    before = len(container[1].seen)
    status, body = raw(front.port, post(str(10 ** 12)))
    assert status == 413 and "less than or equal to 6291456" in body["message"]
    assert len(container[1].seen) == before  # never forwarded
    assert call(front.port, b'{"inputs": "ok"}')[0] == 200  # and the front still serves


def test_answers_pass_through_unchanged_with_end_to_end_headers(container, front):
    assert call(front.port, b'{"inputs": "ok"}', {"Accept": "text/csv", "X-Amzn-SageMaker-Custom-Attributes": "a=1"}
                ) == (200, b"label,score\nPOSITIVE,0.9\n", "text/csv")
    seen = container[1].seen[-1]
    assert seen["Accept"] == "text/csv" and seen["X-Amzn-SageMaker-Custom-Attributes"] == "a=1"
    status, body, content_type = call(front.port, b"reject")
    assert status == 400 and json.loads(body)["message"] == "bad input"  # the container's own error


def test_ping_asks_the_container(container, front):
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=5)
    conn.request("GET", "/ping")
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b'{"status": "Healthy"}')
    container[1].healthy = False
    conn.request("GET", "/ping")
    assert conn.getresponse().status == 503


def test_before_ready_and_after_close_the_front_says_so(container):
    starting = RuntimeFront("127.0.0.1", 0, container[0], timeout=2)
    status, body, _ = call(starting.port, b'{"inputs": "ok"}')
    assert status == 503 and "being created" in json.loads(body)["message"]
    starting.close()
    with pytest.raises(ConnectionError):
        call(starting.port, b'{"inputs": "ok"}')


def test_a_container_that_does_not_answer_in_time_gets_sagemakers_timeout(container, front):
    container[1].delay = 3  # the front waits 2 s
    status, body, _ = call(front.port, b'{"inputs": "ok"}')
    assert status == 408 and "Your invocation timed out" in json.loads(body)["message"]


def test_a_container_gone_is_a_json_502_naming_the_container_log():
    from sagetwin.emulation.processes import free_port

    running = RuntimeFront("127.0.0.1", 0, free_port(), timeout=2)  # nothing listens there
    running.ready()
    try:
        status, body, _ = call(running.port, b'{"inputs": "ok"}')
    finally:
        running.close()
    assert status == 502 and "docker logs" in json.loads(body)["message"]


def test_hop_by_hop_headers_stop_at_the_front_and_the_containers_headers_come_back(container, front):
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    conn.request("POST", "/invocations", body=b'{"inputs": "ok"}', headers={
        "Content-Type": "application/json", "Connection": "keep-alive, X-Per-Hop", "X-Per-Hop": "secret",
        "Keep-Alive": "timeout=5", "X-Amzn-SageMaker-Custom-Attributes": "asked=1"})
    response = conn.getresponse()
    response.read()
    seen = container[1].seen[-1]
    assert "X-Per-Hop" not in seen and "Keep-Alive" not in seen and "Connection" not in seen
    assert seen["X-Amzn-SageMaker-Custom-Attributes"] == "asked=1"
    assert response.getheader("X-Amzn-SageMaker-Custom-Attributes") == "answered-by=container"


def test_a_prediction_the_container_may_have_received_is_never_sent_twice(container, front):
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    for body in (b'{"inputs": "ok"}', b"crash"):  # the second goes on the kept-alive connection to the container
        conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = response.read()
    assert response.status == 502 and "did not answer" in json.loads(answer)["message"]
    assert len(container[1].seen) == 2  # once each: the crash was not retried


def test_a_connection_the_container_closed_while_idle_is_replaced_not_failed(container, front):
    container[1].close_when_idle = True
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    for _ in range(3):
        time.sleep(0.3)  # idle long enough for the container's close to arrive before the next request
        conn.request("POST", "/invocations", body=b'{"inputs": "ok"}', headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"label,score\nPOSITIVE,0.9\n")
    assert len(container[1].seen) == 3


def test_a_local_endpoints_address_is_held_from_the_start_of_deploy():
    """`open_front` listens at once: a port asked for and taken is a clear error before any container
    starts, and without one it is 8080 as in SDK local mode, or any free port when 8080 is taken."""
    import socket

    from sagetwin.backends.local.endpoint import DEFAULT_SERVING_PORT, open_front
    from sagetwin.core.errors import ConfigurationError
    from sagetwin.emulation.processes import free_port, port_is_free

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=f"port {port} on 127.0.0.1 is already in use"):
            open_front(port, free_port(), timeout=5)
    default_was_free = port_is_free(DEFAULT_SERVING_PORT)
    front = open_front(None, free_port(), timeout=5)
    try:
        assert (front.port == DEFAULT_SERVING_PORT) == default_was_free
        assert not port_is_free(front.port)  # held: no other server can take it before the container is up
    finally:
        front.close()
    assert port_is_free(front.port)


def test_web_pages_and_foreign_hosts_are_refused_before_the_container_sees_them(container, front):
    before = len(container[1].seen)
    status, body, _ = call(front.port, b'{"inputs": "ok"}', {"Origin": "http://evil.example"})
    assert status == 403 and "requests from web pages are refused" in json.loads(body)["message"]
    status, answer = raw(front.port, post("16", b'{"inputs": "ok"}', host=f"rebound.example:{front.port}"))
    assert status == 403 and f"'rebound.example:{front.port}'" in answer["message"]
    assert len(container[1].seen) == before  # never forwarded
    assert call(front.port, b'{"inputs": "ok"}')[0] == 200  # the front's own address passes


def test_the_container_gets_the_fronts_secret_never_a_clients(container, front):
    """The secret a container behind the front checks: the front's own on every request; one a
    client sends is dropped, as are hop-by-hop and folded headers."""
    from email.message import Message

    from sagetwin.emulation.bounded_server import FRONT_TOKEN_HEADER
    from sagetwin.emulation.runtime_front import end_to_end

    assert call(front.port, b'{"inputs": "ok"}', {FRONT_TOKEN_HEADER: "forged"})[0] == 200
    assert container[1].seen[-1][FRONT_TOKEN_HEADER] == front.token and len(front.token) >= 32
    headers = Message()
    for name, value in (("X-Ok", "1"), ("X-Folded", "a\r\n b"), (FRONT_TOKEN_HEADER, "forged"),
                        ("Connection", "x-named"), ("X-Named", "2"), ("Keep-Alive", "5")):
        headers[name] = value
    assert end_to_end(headers) == [("X-Ok", "1")]
