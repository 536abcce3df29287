"""The twin's guard: nobody without its secrets is served, from the first request on; signatures
are checked as AWS checks them; a stranger cannot exhaust the connections, the disk or the
threads the owner's calls need."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest

from tests.aws import signed, twin_client

# A stranger on the same machine: it watches for new listening sockets of the test process (the
# way another user would watch /proc/net/tcp) and fires unsigned requests at each from the moment
# it appears, recording every answer.
HAMMER = textwrap.dedent("""
    import json, os, socket, sys, threading, time
    target_pid, out, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    requests = [
        b"POST /moto-api/seed?a=42 HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nContent-Length: 0\\r\\n\\r\\n",
        b"POST / HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nX-Amz-Target: SageMaker.ListTrainingJobs\\r\\n"
        b"Content-Type: application/x-amz-json-1.1\\r\\nContent-Length: 2\\r\\n\\r\\n{}",
        b"GET / HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n",
    ]
    seen, lock = [], threading.Lock()

    def listening_inodes():
        inodes = {}
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in open(table).read().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    inodes[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
        return inodes

    def owned_ports():
        mine = set()
        for fd in os.listdir(f"/proc/{target_pid}/fd"):
            try:
                link = os.readlink(f"/proc/{target_pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                mine.add(link[8:-1])
        return {port for inode, port in listening_inodes().items() if inode in mine}

    def hammer(port):
        while not os.path.exists(stop):
            for raw in requests:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                        conn.sendall(raw.replace(b"127.0.0.1", f"127.0.0.1:{port}".encode()))
                        status = conn.recv(64).split(b" ")[1].decode()
                except (OSError, IndexError):
                    continue
                with lock:
                    seen.append([port, status, time.time()])

    before = owned_ports()
    open(out + ".ready", "w").close()
    started = set()
    while not os.path.exists(stop):
        for port in owned_ports() - before - started:
            started.add(port)
            threading.Thread(target=hammer, args=(port,), daemon=True).start()
    time.sleep(0.5)
    with lock:
        json.dump(seen, open(out, "w"))
""")


def test_no_request_is_served_before_the_guard_is_whole(sagetwin_home, tmp_path):
    from sagetwin.aws.twin import Twin

    out, stop = tmp_path / "seen.json", tmp_path / "stop"
    hammer = subprocess.Popen([sys.executable, "-c", HAMMER, str(os.getpid()), str(out), str(stop)])
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "seen.json.ready").exists():
            assert hammer.poll() is None and time.monotonic() < deadline, "the hammer did not start"
            time.sleep(0.05)
        with Twin(persist=False) as twin:
            port, started = twin.port, time.time()
            assert twin_client(twin, "sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
            time.sleep(0.5)  # the hammer goes on against the running twin too
        stop.touch()
        hammer.wait(timeout=30)
    finally:
        stop.touch()
        hammer.kill()
    seen = json.loads(out.read_text())
    at_twin = [status for seen_port, status, _ in seen if int(seen_port) == int(port)]
    assert at_twin, "the hammer never reached the twin: the test shows nothing"
    during_start = [at for seen_port, _, at in seen if int(seen_port) == int(port) and at < started]
    assert during_start, "no request reached the twin while it started: the start-up window went untested"
    assert set(at_twin) == {"403"}, f"answers to an unsigned stranger: {sorted(set(at_twin))}"


def send(twin, request, extra: dict | None = None, body: bytes | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", twin.port, timeout=30)
    try:
        conn.request(request.method, request.url.split(str(twin.port), 1)[1],
                     body=request.body if body is None else body, headers={**dict(request.headers), **(extra or {})})
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


LIST_JOBS = {"X-Amz-Target": "SageMaker.ListTrainingJobs", "Content-Type": "application/x-amz-json-1.1"}


def test_signatures_are_checked_against_the_secret_of_the_key(sagetwin_home):
    import boto3
    from botocore.exceptions import ClientError

    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin:
        good = signed(twin, "sagemaker", "POST", "/", b"{}", LIST_JOBS)
        assert send(twin, good)[0] == 200
        # the key ID is right, the signature is not: served before, refused now
        status, headers, body = send(twin, good, {"Authorization": good.headers["Authorization"].rsplit("=", 1)[0]
                                                  + "=00"})
        assert (status, json.loads(body)["__type"]) == (403, "InvalidSignatureException")
        wrong_secret = signed(twin, "sagemaker", "POST", "/", b"{}", LIST_JOBS, secret="not-the-secret")
        assert json.loads(send(twin, wrong_secret)[2])["__type"] == "InvalidSignatureException"
        # signed for one body, sent with another (the signature covers the body's hash)
        tampered = send(twin, good, {"Content-Length": "20"}, body=b'{"MaxResults": 1}   ')
        assert (tampered[0], json.loads(tampered[2])["__type"]) == (403, "InvalidSignatureException")
        # a key ID in the query string, no signature
        key = twin.environment()["AWS_ACCESS_KEY_ID"]
        bare = urllib.request.Request(f"{twin.url}/?X-Amz-Credential={key}%2F20260101%2Fus-east-1%2Fs3"
                                      "%2Faws4_request")
        with pytest.raises(urllib.error.HTTPError) as query_key:
            urllib.request.urlopen(bare, timeout=10)
        assert query_key.value.code in (400, 403) and b"AuthorizationQueryParametersError" in query_key.value.read()
        stranger = boto3.session.Session(region_name="us-east-1", aws_access_key_id="AKIASTRANGER",
                                         aws_secret_access_key="x").client("sagemaker", endpoint_url=twin.url)
        with pytest.raises(ClientError) as unknown:
            stranger.list_training_jobs()
        assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"
        # the right key and secret without the session token that belongs to them
        no_token = signed(twin, "sagemaker", "POST", "/", b"{}", LIST_JOBS)
        del no_token.headers["X-Amz-Security-Token"]
        assert json.loads(send(twin, no_token)[2])["__type"] == "UnrecognizedClientException"
        for service, call, code in [("sagemaker", lambda c: c.list_training_jobs(), "InvalidSignatureException"),
                                    ("s3", lambda c: c.list_buckets(), "SignatureDoesNotMatch"),
                                    ("sts", lambda c: c.get_caller_identity(), "SignatureDoesNotMatch"),
                                    ("iam", lambda c: c.list_roles(), "SignatureDoesNotMatch"),
                                    ("logs", lambda c: c.describe_log_groups(), "InvalidSignatureException")]:
            env = twin.environment()
            forged = boto3.session.Session(region_name="us-east-1", aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                           aws_secret_access_key="forged", aws_session_token=env["AWS_SESSION_TOKEN"])
            with pytest.raises(ClientError) as refused:
                call(forged.client(service, endpoint_url=twin.url))
            assert refused.value.response["Error"]["Code"] == code, service
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_moto_controls_are_refused_to_every_caller(sagetwin_home):
    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin:
        for method, path in [("POST", "/moto-api/seed?a=42"), ("POST", "/moto-api/reset"),
                             ("POST", "/moto-api/recorder/start-recording"), ("GET", "/moto-api/"),
                             ("GET", "/moto-api/data.json")]:
            status, _, body = send(twin, signed(twin, "s3", method, path))  # signed with the twin's own key
            assert (status, b"<Code>AccessDenied</Code>" in body) == (403, True), path
            with pytest.raises(urllib.error.HTTPError) as unsigned:
                urllib.request.urlopen(urllib.request.Request(twin.url + path, method=method), timeout=10)
            assert unsigned.value.code == 403
        assert not (sagetwin_home / "moto_recording").exists() and not os.path.exists("moto_recording")


def test_web_pages_and_other_hosts_are_refused_even_when_signed(sagetwin_home):
    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin:
        request = signed(twin, "sagemaker", "POST", "/", b"{}", LIST_JOBS)
        status, _, body = send(twin, request, {"Origin": "http://evil.example"})
        assert (status, json.loads(body)) == (403, {"__type": "AccessDeniedException", "message":
                                                    "Access denied. (requests from web pages are refused)"})
        # a rebinding page's request names its own host; signed for that host, it is refused for it
        rebound = signed(twin, "sagemaker", "POST", "/", b"{}", LIST_JOBS, host="attacker.example")
        status, _, body = send(twin, rebound)
        assert status == 403 and "requests for host 'attacker.example' are refused" in json.loads(body)["message"]
        assert send(twin, request)[0] == 200  # the same request, as the twin's own clients send it


def test_the_clients_people_use_are_served(sagetwin_home, tmp_path, monkeypatch):
    import s3fs

    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin:
        s3 = twin_client(twin, "s3")
        s3.create_bucket(Bucket="signed-clients")
        s3.put_object(Bucket="signed-clients", Key="a b/c+d~!.txt", Body=b"hello")
        s3.put_object(Bucket="signed-clients", Key="empty", Body=b"")
        # presigned URLs of the twin's own clients: SigV2 (boto3's default for S3) and SigV4
        for client in (s3, twin_client(twin, "s3", signature_version="s3v4")):
            url = client.generate_presigned_url("get_object", Params={"Bucket": "signed-clients",
                                                                      "Key": "a b/c+d~!.txt"})
            assert urllib.request.urlopen(url, timeout=10).read() == b"hello"
            with pytest.raises(urllib.error.HTTPError) as forged:
                urllib.request.urlopen(url.replace("Signature=", "Signature=A"), timeout=10)
            assert forged.value.code == 403 and b"SignatureDoesNotMatch" in forged.value.read()
            expiring = client.generate_presigned_url("get_object", ExpiresIn=1, Params={
                "Bucket": "signed-clients", "Key": "empty"})
            time.sleep(2.1)
            with pytest.raises(urllib.error.HTTPError) as expired:
                urllib.request.urlopen(expiring, timeout=10)
            assert expired.value.code == 403 and b"Request has expired" in expired.value.read()
        # S3's Version 2 header signature, for clients configured with it
        legacy = twin_client(twin, "s3", signature_version="s3")
        assert legacy.get_object(Bucket="signed-clients", Key="empty")["Body"].read() == b""
        env = twin.environment()
        fs = s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                               token=env["AWS_SESSION_TOKEN"], client_kwargs={"endpoint_url": twin.url,
                                                                              "region_name": "us-east-1"})
        fs.pipe("signed-clients/fs/big.bin", b"x" * (6 * 1024 * 1024))
        assert fs.cat("signed-clients/fs/big.bin") == b"x" * (6 * 1024 * 1024)
        # the AWS CLI (its own copy of botocore), as a person runs it after `sagetwin aws`'s exports
        (tmp_path / "up.txt").write_text("from the cli")
        cli_env = {**os.environ, **env, "AWS_PAGER": ""}
        aws = [os.path.join(os.path.dirname(sys.executable), "aws")]
        subprocess.run(aws + ["s3", "cp", str(tmp_path / "up.txt"), "s3://signed-clients/cli/up.txt"],
                       env=cli_env, check=True, capture_output=True, timeout=120)
        listed = subprocess.run(aws + ["s3", "ls", "s3://signed-clients/cli/"], env=cli_env, check=True,
                                capture_output=True, text=True, timeout=120).stdout
        assert "up.txt" in listed
        jobs = subprocess.run(aws + ["sagemaker", "list-training-jobs"], env=cli_env, check=True,
                              capture_output=True, text=True, timeout=120).stdout
        assert json.loads(jobs)["TrainingJobSummaries"] == []
        forged = subprocess.run(aws + ["sagemaker", "list-training-jobs"], env={**cli_env,
                                "AWS_SECRET_ACCESS_KEY": "forged"}, capture_output=True, text=True, timeout=120)
        assert forged.returncode != 0 and "InvalidSignatureException" in forged.stderr
        # the SageMaker SDK's session
        import boto3
        import sagemaker

        monkeypatch.setenv("AWS_ENDPOINT_URL", twin.url)
        session = sagemaker.Session(boto3.session.Session(
            region_name="us-east-1", aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], aws_session_token=env["AWS_SESSION_TOKEN"]))
        uri = session.upload_string_as_file_body("sdk", bucket="signed-clients", key="sdk/a.txt")
        assert uri == "s3://signed-clients/sdk/a.txt"


def test_credentials_made_through_the_twin_are_honoured_and_revoked(sagetwin_home):
    import boto3
    from botocore.exceptions import ClientError

    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin:
        iam = twin_client(twin, "iam")
        iam.create_user(UserName="analyst")
        key = iam.create_access_key(UserName="analyst")["AccessKey"]
        user = boto3.session.Session(region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
                                     aws_secret_access_key=key["SecretAccessKey"]).client("sts",
                                                                                          endpoint_url=twin.url)
        assert user.get_caller_identity()["Arn"].endswith(":user/analyst")
        iam.update_access_key(UserName="analyst", AccessKeyId=key["AccessKeyId"], Status="Inactive")
        with pytest.raises(ClientError) as revoked:
            user.get_caller_identity()
        assert revoked.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_a_strangers_upload_is_refused_before_its_body_is_read(sagetwin_home):
    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin, socket.create_connection(("127.0.0.1", twin.port), timeout=10) as conn:
        conn.sendall(f"PUT /bucket/huge HTTP/1.1\r\nHost: 127.0.0.1:{twin.port}\r\n"
                     f"Content-Length: {300 * 1024**2}\r\n\r\n".encode())
        answer = b""  # answered on the headers, not one byte of the body sent, and the connection
        while chunk := conn.recv(4096):  # closed (recv gives b""): the body has nowhere to go
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 403 Forbidden") and b"<Code>AccessDenied</Code>" in answer


def test_an_api_call_over_8_mib_is_refused_on_its_headers_even_with_the_owners_key(sagetwin_home):
    from sagetwin.aws.guard import API_MAX_BODY_BYTES
    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin, socket.create_connection(("127.0.0.1", twin.port), timeout=10) as conn:
        key = twin.environment()["AWS_ACCESS_KEY_ID"]
        conn.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{twin.port}\r\nX-Amz-Target: SageMaker.CreateTrainingJob"
                     f"\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {API_MAX_BODY_BYTES + 1}\r\n"
                     f"X-Amz-Date: {time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}\r\n"
                     f"Authorization: AWS4-HMAC-SHA256 Credential={key}/{time.strftime('%Y%m%d', time.gmtime())}/"
                     "us-east-1/sagemaker/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=00"
                     "\r\n\r\n".encode())
        answer = b""  # answered on the headers: no byte of the body was sent
        while chunk := conn.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"RequestEntityTooLargeException" in answer


def test_the_http2_preface_is_refused_by_the_twin_on_its_headers(sagetwin_home):
    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin, socket.create_connection(("127.0.0.1", twin.port), timeout=10) as conn:
        conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        answer = b""
        while chunk := conn.recv(4096):  # to the end: the answer closes the connection (headers and body
            answer += chunk              # may come in separate segments)
        assert answer.startswith(b"HTTP/1.0 403 Forbidden") and b"<Code>AccessDenied</Code>" in answer, answer[:80]
        assert twin_client(twin, "sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_a_sigv4_request_dated_outside_15_minutes_is_refused(sagetwin_home):
    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin:
        for skew in (-16 * 60, 16 * 60):
            stale = signed(twin, "sagemaker", "POST", "/", b"{}", LIST_JOBS, when=time.time() + skew)
            status, _, body = send(twin, stale)
            assert (status, json.loads(body)["__type"]) == (403, "InvalidSignatureException"), skew
            assert "Signature expired" in json.loads(body)["message"] or "not yet current" in json.loads(body)[
                "message"], body
        assert send(twin, signed(twin, "sagemaker", "POST", "/", b"{}", LIST_JOBS, when=time.time() - 60))[0] == 200


def test_invoke_endpoint_over_6_mb_gets_the_runtimes_413(sagetwin_home):
    from botocore.exceptions import ClientError

    from sagetwin.aws.twin import Twin
    from sagetwin.core.limits import MAX_PAYLOAD_BYTES

    with Twin(persist=False) as twin:
        runtime = twin_client(twin, "sagemaker-runtime", retries={"max_attempts": 1})
        with pytest.raises(ClientError) as too_big:
            runtime.invoke_endpoint(EndpointName="any", Body=b"x" * (MAX_PAYLOAD_BYTES + 1),
                                    ContentType="application/octet-stream")
    assert too_big.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes" in str(too_big.value)


def test_strangers_cannot_take_the_connections_the_owner_needs(sagetwin_home, monkeypatch):
    """1,010 connections trickling a header byte each (what once took every slot) while the owner
    calls; strangers share a few slots and are let go at their deadline."""
    import psutil

    from sagetwin.aws import server
    from sagetwin.aws.twin import Twin

    monkeypatch.setattr(server, "STRANGER_DEADLINE_S", 3.0)
    with Twin(persist=False) as twin:
        sm = twin_client(twin, "sagemaker", retries={"max_attempts": 1}, read_timeout=10, connect_timeout=10)
        strangers = []
        try:
            for _ in range(1010):
                conn = socket.create_connection(("127.0.0.1", twin.port), timeout=5)
                conn.sendall(b"P")
                strangers.append(conn)
            started = time.monotonic()
            assert sm.list_training_jobs()["TrainingJobSummaries"] == []
            answered_in = time.monotonic() - started
            for conn in strangers:
                conn.sendall(b"O")
            time.sleep(server.STRANGER_DEADLINE_S + 2.5)
            open_at_twin = [c for c in psutil.Process().net_connections("tcp")
                            if c.laddr and c.laddr.port == twin.port and c.status == "ESTABLISHED"]
            still_open = 0
            for conn in strangers:
                try:
                    conn.sendall(b"S")
                    conn.settimeout(0.01)
                    still_open += conn.recv(1) != b""
                except (TimeoutError, OSError):
                    pass
        finally:
            for conn in strangers:
                conn.close()
        assert answered_in < 5, f"the owner waited {answered_in:.1f} s"
        assert len(open_at_twin) <= server.STRANGER_CONNECTIONS + 2, len(open_at_twin)
        assert sm.list_training_jobs()["TrainingJobSummaries"] == []


def test_a_slow_stranger_is_let_go_at_its_deadline(sagetwin_home, monkeypatch):
    from sagetwin.aws import server
    from sagetwin.aws.twin import Twin

    monkeypatch.setattr(server, "STRANGER_DEADLINE_S", 2.0)
    with Twin(persist=False) as twin, socket.create_connection(("127.0.0.1", twin.port), timeout=10) as conn:
        started, closed_after = time.monotonic(), None
        for byte in b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n" * 4:
            try:
                conn.sendall(bytes([byte]))
                conn.settimeout(0.5)
                if conn.recv(1) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
        assert closed_after is not None and closed_after < server.STRANGER_DEADLINE_S + 3


def test_a_request_goes_only_where_its_signature_was_made_for(sagetwin_home, tmp_path):
    """A leaked presigned URL (any operation) cannot be turned into a SageMaker call by adding an
    X-Amz-Target and a body, nor reach another service through moto's own routing."""
    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin:
        s3 = twin_client(twin, "s3", signature_version="s3v4")
        s3.create_bucket(Bucket="leaky")
        s3.put_object(Bucket="leaky", Key="x.txt", Body=b"hi")
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "leaky", "Key": "x.txt"})
        path = url.split(str(twin.port), 1)[1]
        create = json.dumps({"TrainingJobName": "from-a-leaked-url"}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", twin.port, timeout=10)
        conn.request("GET", path, body=create, headers={"X-Amz-Target": "SageMaker.CreateTrainingJob",
                                                          "Content-Type": "application/x-amz-json-1.1"})
        answer = conn.getresponse()
        assert answer.status == 403 and b"X-Amz-Target must be signed" in answer.read()
        conn.close()
        # the same URL with a query-protocol body still reaches only S3 (its object), not STS
        conn = http.client.HTTPConnection("127.0.0.1", twin.port, timeout=10)
        conn.request("GET", path, body=b"Action=AssumeRoleWithWebIdentity&Version=2011-06-15",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        answer = conn.getresponse()
        assert (answer.status, answer.read()) == (200, b"hi")
        conn.close()
        assert twin_client(twin, "sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
        # a header signature with a second Credential (which moto would read instead) is malformed
        good = signed(twin, "s3", "GET", "/leaky/x.txt")
        authorization = good.headers["Authorization"].replace(
            "Credential=", "Credential=K/20260101/us-east-1/iam/aws4_request, Credential=", 1)
        status, _, body = send(twin, good, {"Authorization": authorization})
        assert status == 400 and b"AuthorizationHeaderMalformed" in body
        # moto's controls behind an encoded or doubled slash, signed with the twin's own key
        for path in ("/%6Doto-api/reset", "//moto-api/reset"):
            status, _, body = send(twin, signed(twin, "s3", "POST", path))
            assert status == 403 and b"own controls are not part of AWS" in body, path
        assert twin.clients.role_exists(twin.role_arn)


def test_expired_credentials_and_stale_v2_dates_are_refused():
    """Temporary credentials stop at their expiry (the twin's role: 12 h) and a Version 2 header
    signature is bound to its date, as AWS has them: a captured request cannot be replayed later."""
    import base64
    import hashlib
    import hmac
    from email.utils import formatdate

    from sagetwin.aws.signatures import Request, Secret, SignatureError, check

    secret = Secret("s3cr3t", None, expires_at=1_000_000.0)

    def v2(date: float) -> Request:
        stamp = formatdate(date, usegmt=True)
        signature = base64.b64encode(hmac.new(b"s3cr3t", f"GET\n\n\n{stamp}\n/b/k".encode(),
                                              hashlib.sha1).digest()).decode()
        return Request("GET", "/b/k", "", {"host": "127.0.0.1:1", "date": stamp,
                                            "authorization": f"AWS AKIDEXAMPLE:{signature}"})

    check(v2(999_000.0), lambda key: secret, now=999_000.0)  # signed now, before the expiry: served
    with pytest.raises(SignatureError) as expired:
        check(v2(1_000_500.0), lambda key: secret, now=1_000_500.0)
    assert expired.value.kind == "expired-token"
    with pytest.raises(SignatureError) as stale:
        check(v2(999_000.0), lambda key: Secret("s3cr3t"), now=999_000.0 + 16 * 60)
    assert stale.value.kind == "skew"
