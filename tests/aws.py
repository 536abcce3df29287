"""Emulated AWS for tests: moto's server on 127.0.0.1, fake credentials, and a loopback-only guard."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import urllib.request
from contextlib import contextmanager

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
BUCKET = f"sagemaker-{REGION}-{ACCOUNT}"


def aws_env(endpoint: str, tmp_path) -> dict[str, str]:
    """Environment that points every AWS client at moto and never at a person's real config."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAGETWIN_ROLE": ROLE,
    }


def twin_client(twin, service: str, **config):
    """A client with the credentials the twin hands out (its environment)."""
    import boto3
    from botocore.config import Config

    env = twin.environment()
    return boto3.session.Session(region_name="us-east-1", aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                 aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                 aws_session_token=env["AWS_SESSION_TOKEN"]).client(
        service, endpoint_url=twin.url, config=Config(**config) if config else None)


def signed(twin, service: str, method: str, path: str, body: bytes = b"", headers: dict | None = None,
           secret: str | None = None, host: str | None = None, when: float | None = None):
    """A request signed by botocore's own signer with the twin's credentials (or another secret),
    at ``when`` (a Unix time; default now)."""
    import datetime
    from unittest import mock

    from botocore import auth
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    env = twin.environment()
    credentials = Credentials(env["AWS_ACCESS_KEY_ID"], secret or env["AWS_SECRET_ACCESS_KEY"],
                              env["AWS_SESSION_TOKEN"])
    request = AWSRequest(method=method, url=f"{twin.url}{path}", data=body, headers=dict(headers or {}))
    request.headers["Host"] = host or f"127.0.0.1:{twin.port}"
    at = None if when is None else datetime.datetime.fromtimestamp(when, datetime.timezone.utc).replace(tzinfo=None)
    with mock.patch.object(auth, "get_current_datetime", lambda: at) if at else contextlib.nullcontext():
        (S3SigV4Auth if service == "s3" else SigV4Auth)(credentials, service, "us-east-1").add_auth(request)
    return request


def queue_invoke_results(endpoint: str, bodies: list[object]) -> None:
    """moto answers InvokeEndpoint from a queue of canned results; nothing real computes them."""
    payload = {"account_id": ACCOUNT, "region": REGION, "results": [
        {"Body": json.dumps(body), "ContentType": "application/json", "InvokedProductionVariant": "AllTraffic",
         "CustomAttributes": ""} for body in bodies]}
    request = urllib.request.Request(f"{endpoint}/moto-api/static/sagemaker/endpoint-results",
                                     data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return True  # unix sockets and the like
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def loopback_only(monkeypatch):
    """Refuse (and record) any connection or name lookup that would leave 127.0.0.1."""
    attempts: list[str] = []
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host.decode() if isinstance(host, bytes) else host):
            attempts.append(f"lookup {host}")
            raise socket.gaierror(f"test guard: {host} is not on 127.0.0.1")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(address) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if not _is_loopback(host):
            attempts.append(f"connect {address}")
            raise OSError(f"test guard: {address} is not on 127.0.0.1")

    def guarded_connect(self, address):
        check(address)
        return real_connect(self, address)

    def guarded_connect_ex(self, address):
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    yield attempts
