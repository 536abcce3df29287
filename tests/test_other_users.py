"""Another local user (uid 65534, as `setpriv` makes one) can neither use nor exhaust what
sagetwin serves: the model server, the runtime front and the AWS twin close its connections
before reading them, while the owner's calls are answered, however many it opens."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import textwrap
import time

import pytest

from sagetwin.emulation.peers import from_owner, peer_uid
from tests.test_http_server import KINDS, serving

STRANGER = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                reason="acting as another user needs root and setpriv")

# As the other user: open N connections, send a request on each, report what came back.
FLOOD = textwrap.dedent("""\
    import json, socket, sys
    port, count = int(sys.argv[1]), int(sys.argv[2])
    request = sys.argv[3].encode()
    answers, held = [], []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        held.append(sock)
        try:
            sock.sendall(request)
            answers.append(sock.recv(65536).decode("latin-1"))
        except OSError as exc:
            answers.append(type(exc).__name__)
    print(json.dumps(answers), flush=True)
    sys.stdin.readline()  # the connections stay open until the test has made its own call
""")


def flood(port: int, count: int, request: str) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([*STRANGER, "/usr/bin/python3", "-c", FLOOD, str(port), str(count), request],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line, "the other user's client did not run"
    return proc, json.loads(line)


def test_the_peer_of_a_loopback_connection_is_known_for_both_address_families():
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as listener:
            listener.bind((host, 0))
            listener.listen()
            with socket.create_connection((host, listener.getsockname()[1])):
                accepted, _ = listener.accept()
                with accepted:
                    assert peer_uid(accepted) == os.geteuid() and from_owner(accepted)


def test_a_peer_that_already_closed_belongs_to_no_one():
    """The kernel reports a closed peer (orphaned, TIME_WAIT) as uid 0 with no inode: as root
    that would pass for the owner, so it is no one's and its buffered request is never served."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        client.sendall(b"GET /ping HTTP/1.1\r\n\r\n")
        client.close()
        accepted, _ = listener.accept()
        with accepted:
            time.sleep(0.05)
            assert peer_uid(accepted) is None and not from_owner(accepted)


@needs_root
def test_the_peer_of_another_users_connection_is_that_user():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = subprocess.Popen([*STRANGER, "/usr/bin/python3", "-c",
                                   "import socket, sys; s = socket.create_connection(('127.0.0.1', int(sys.argv[1])));"
                                   " sys.stdin.readline()", str(listener.getsockname()[1])], stdin=subprocess.PIPE)
        try:
            accepted, _ = listener.accept()
            with accepted:
                assert peer_uid(accepted) == 65534 and not from_owner(accepted)
        finally:
            client.stdin.close()
            client.wait(timeout=10)


@needs_root
@pytest.mark.parametrize("kind", KINDS)
def test_another_user_is_refused_by_an_endpoint_and_cannot_crowd_out_the_owner(kind, monkeypatch):
    monkeypatch.setenv("SAGETWIN_SERVER_MAX_CONNECTIONS", "8")
    body = '{"inputs": "hello"}'
    request = f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" \
              f"Content-Length: {len(body)}\r\n\r\n{body}"
    with serving(kind) as port:
        proc, answers = flood(port, 40, request)  # five times the server's connection limit
        try:
            assert all(a.startswith("HTTP/1.1 403") and "only the user who started it" in a or a in
                       ("ConnectionResetError", "BrokenPipeError", "") for a in answers), answers[:3]
            assert not any("ECHO" in a for a in answers)
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", port), timeout=5) as own:
                own.sendall(request.encode())
                answer = own.recv(65536).decode()
            assert answer.startswith("HTTP/1.1 200") and "ECHO" in answer
            assert time.monotonic() - started < 3
        finally:
            proc.stdin.close()
            proc.wait(timeout=10)


@needs_root
def test_another_user_is_refused_by_the_twin_before_its_request_is_read(sagetwin_home):
    from sagetwin.aws import Twin

    with Twin(persist=False) as twin:
        env = twin.environment()
        own = {"aws_access_key_id": env["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
               "aws_session_token": env["AWS_SESSION_TOKEN"]}
        key_id = own["aws_access_key_id"]
        # a stranger who even knows the key ID: 150 connections, each a request that names it
        request = (f"PUT /bucket/key HTTP/1.1\r\nHost: 127.0.0.1:{twin.port}\r\nContent-Length: 1000\r\n"
                   f"Authorization: AWS4-HMAC-SHA256 Credential={key_id}/20260101/us-east-1/s3/aws4_request, "
                   "SignedHeaders=host, Signature=00\r\n\r\n")
        proc, answers = flood(twin.port, 150, request)
        try:
            assert set(answers) <= {"", "ConnectionResetError", "BrokenPipeError"}, answers[:3]
            import boto3

            s3 = boto3.client("s3", endpoint_url=twin.url, region_name="us-east-1", **own)
            s3.create_bucket(Bucket="owner-bucket")
            s3.put_object(Bucket="owner-bucket", Key="k", Body=b"x" * 100_000)
            assert s3.get_object(Bucket="owner-bucket", Key="k")["Body"].read() == b"x" * 100_000
        finally:
            proc.stdin.close()
            proc.wait(timeout=10)


# As the other user: listen on a port, say so, then report what any connection sent within a moment.
SQUAT = textwrap.dedent("""\
    import socket, sys
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(3)
    print(listener.getsockname()[1], flush=True)
    received = b""
    try:
        connection, _ = listener.accept()
        connection.settimeout(1)
        received = connection.recv(65536)
    except OSError:
        pass
    print(len(received), flush=True)
""")


@needs_root
def test_a_runtime_front_sends_nothing_to_a_port_another_user_took():
    """A ``local`` endpoint's container port, taken by another user's program (the container gone,
    or between the port's choice and Docker's bind): the front answers 502 naming it, and the
    request, its body and the front's secret never reach it."""
    from sagetwin.emulation.runtime_front import RuntimeFront

    squatter = subprocess.Popen([*STRANGER, "/usr/bin/python3", "-c", SQUAT], stdout=subprocess.PIPE, text=True)
    try:
        port = int(squatter.stdout.readline())
        front = RuntimeFront("127.0.0.1", 0, port, timeout=10)
        front.ready()
        try:
            connection = socket.create_connection(("127.0.0.1", front.port), timeout=10)
            body = b'{"inputs": "a secret prompt"}'
            connection.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            answer = connection.recv(65536).decode()
            connection.close()
        finally:
            front.close()
        assert answer.startswith("HTTP/1.1 502") and "held by another user's program (uid 65534)" in answer
        assert squatter.stdout.readline().strip() == "0", "the other user's program received nothing"
    finally:
        squatter.kill()
        squatter.wait()
