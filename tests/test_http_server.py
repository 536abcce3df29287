"""The local model server answers every bad request with JSON and the right status, bounds
memory and time per request, and keeps serving (SageMaker's front end and MMS alike)."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import socket
import threading

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


@pytest.fixture(params=["model server", "runtime front"])
def server(request, monkeypatch):
    """The model server's port, or that of a runtime front before it (as a local endpoint has)."""
    monkeypatch.setenv("SAGETWIN_SERVER_READ_TIMEOUT", "1")
    state = ServerState()
    state.handler = Echo()
    httpd = make_server("127.0.0.1", 0, state)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    if request.param == "model server":
        yield httpd.server_address[1]
    else:
        front = RuntimeFront("127.0.0.1", 0, httpd.server_address[1], timeout=10)
        front.ready()
        yield front.port
        front.close()
    httpd.shutdown()
    httpd.server_close()


def raw(port: int, data: bytes, wait: float = 5) -> tuple[int, dict]:
    """Send bytes as they are; return the status and the JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def post(length: str, body: bytes = b"") -> bytes:
    return (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
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
    (b"POST /invocations HTTP/1.1\r\nHost: x\r\n\r\n", 411),
    (b"POST /invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411),
    (b"DELETE /invocations HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (b"this is not http\r\n\r\n", 400),
    (b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (post("8", b'{"a": 1}'), 400),  # the model's own client error
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
