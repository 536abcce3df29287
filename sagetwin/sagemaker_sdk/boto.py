"""boto3 plumbing shared by the SDK-based backends: clients that honour endpoint overrides and
retry throttling, clear errors for missing credentials, region and role, S3 uploads by content."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from sagetwin.core.errors import BackendUnavailableError, ConfigurationError
from sagetwin.sagemaker_sdk.sdk import SDK_CONFIG, import_sdk

MANAGED_TAG = "sagetwin:managed"
RUN_TAG = "sagetwin:run"
UPLOAD_MARKER = ".sagetwin-complete"


def botocore_config() -> Any:
    from botocore.config import Config

    # Throttling is retried by botocore's standard retry mode, with backoff; AWS_MAX_ATTEMPTS (the
    # standard variable, which an explicit Config would otherwise override) still decides how often.
    attempts = os.environ.get("AWS_MAX_ATTEMPTS", "")
    return Config(retries={"mode": "standard", "max_attempts": int(attempts) if attempts.isdigit() else 10},
                  connect_timeout=10, read_timeout=120)


def boto_session(region: str | None = None) -> Any:
    import boto3

    session = boto3.Session(region_name=region) if region else boto3.Session()
    if not session.region_name:
        raise ConfigurationError(
            "no AWS region is configured.",
            "set AWS_REGION / AWS_DEFAULT_REGION, `aws configure set region us-east-1`, or pass region=.",
        )
    return session


def check_credentials(session: Any) -> None:
    if session.get_credentials() is None:
        raise BackendUnavailableError(
            "no AWS credentials were found (environment, ~/.aws, SSO or instance role).",
            "run `aws configure` or `aws sso login`, or set AWS_PROFILE / AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY; use --backend process or local to work offline.",
        )


def account_id(session: Any) -> str:
    """Through a client boto3 builds itself, so AWS_ENDPOINT_URL(_STS) is honoured (the SDK's is not)."""
    return session.client("sts", config=botocore_config()).get_caller_identity()["Account"]


def ensure_bucket(session: Any, bucket: str, account: str) -> str:
    """The bucket, created when missing; one owned by another account is refused (bucket squatting:
    whoever made that name first would receive the data, the code and the model, and could swap
    in their own). From here on every S3 request on it carries ``ExpectedBucketOwner``."""
    from botocore.exceptions import ClientError

    s3 = session.client("s3", config=botocore_config())
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("403", "AccessDenied", "Forbidden"):
            raise ConfigurationError(
                f"S3 bucket {bucket} exists but is not owned by your account {account} (or you may not use it); "
                "sagetwin will not put data, code or models there.",
                "pass -o bucket=NAME with a bucket your account owns.") from None
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise ConfigurationError(f"S3 bucket {bucket} is not usable: {exc}.",
                                     "pass bucket= a bucket you own, or check your permissions.") from None
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if session.region_name != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": session.region_name}
        s3.create_bucket(**kwargs)
    guard_bucket_owner(session, bucket, account)
    return bucket


def guard_bucket_owner(session: Any, bucket: str, account: str) -> None:
    """Every S3 request on ``bucket`` made through ``session`` (the SDK's own uploads included)
    names the owner it expects; S3 refuses it if someone else owns the bucket."""

    def expect_owner(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        if params.get("Bucket") == bucket and "ExpectedBucketOwner" in model.input_shape.members:
            params.setdefault("ExpectedBucketOwner", account)

    session.events.register("before-parameter-build.s3", expect_owner, unique_id=f"sagetwin-owner-{bucket}")


def resolve_role(role: str | None, session: Any) -> str:
    """Argument > ``$SAGETWIN_ROLE`` > the SageMaker execution role this code runs under.

    The execution role is read from STS through a client that honours endpoint overrides
    (the SDK's own ``get_execution_role`` builds one that does not).
    """
    role = role or os.environ.get("SAGETWIN_ROLE")
    if role:
        return role
    try:
        arn = session.client("sts", config=botocore_config()).get_caller_identity()["Arn"]
    except Exception:
        arn = ""
    # In a notebook or job: arn:aws:sts::ACCOUNT:assumed-role/ROLE_NAME/SESSION
    parts = arn.split(":")
    if len(parts) == 6 and parts[5].startswith("assumed-role/") and "sagemaker" in parts[5].lower():
        return f"arn:aws:iam::{parts[4]}:role/{parts[5].split('/')[1]}"
    raise ConfigurationError(
        "no IAM role for SageMaker was given, and this code does not run under a SageMaker execution role"
        + (f" (it runs as {arn})" if arn else "") + ".",
        "pass --role / role='arn:aws:iam::ACCOUNT:role/NAME' or set SAGETWIN_ROLE to a role SageMaker can assume.",
    )


def sagemaker_session(session: Any, bucket: str) -> Any:
    sdk = import_sdk()
    config = botocore_config()
    return sdk.Session(
        boto_session=session,
        sagemaker_client=session.client("sagemaker", config=config),
        sagemaker_runtime_client=session.client("sagemaker-runtime", config=config),
        default_bucket=bucket,
        sagemaker_config=SDK_CONFIG,
    )


def folder_digest(path: Path) -> str:
    """Content hash of a file or folder: relative names and bytes, so moves and touches don't matter."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path.parent if path.is_file() else path)).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def upload_once(session: Any, path: Path, bucket: str, prefix: str = "sagetwin/inputs",
                say: Callable[[str], None] | None = None) -> tuple[str, bool]:
    """Upload a local file/folder under its content hash; reuse an earlier upload. Returns (uri, uploaded).
    ``say`` hears the bytes to send and how long they took; a terminal also gets a byte counter."""
    # the bucket's owner is checked on every request (``guard_bucket_owner`` on this session)
    s3 = session.client("s3", config=botocore_config())
    key_prefix = f"{prefix}/{folder_digest(path)}"
    uri = f"s3://{bucket}/{key_prefix}"
    marker = f"{key_prefix}{UPLOAD_MARKER}"  # beside the data, so it never lands in the channel
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=marker, MaxKeys=1)
    if listed.get("KeyCount", 0):
        return uri, False
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    size = sum(f.stat().st_size for f in files)
    say = say or (lambda _: None)
    say(f"uploading {path.name}: {len(files)} file(s), {size / 1e6:.1f} MB to {uri}")
    started = time.monotonic()
    with tqdm(total=size, unit="B", unit_scale=True, desc="upload", file=sys.stderr, leave=False,
              disable=not sys.stderr.isatty()) as counter:
        for file in files:
            relative = file.name if path.is_file() else str(file.relative_to(path))
            s3.upload_file(str(file), bucket, f"{key_prefix}/{relative}", Callback=counter.update)
    took = max(time.monotonic() - started, 1e-6)
    say(f"uploaded {size / 1e6:.1f} MB in {took:.1f}s ({size / 1e6 / took:.1f} MB/s)")
    s3.put_object(Bucket=bucket, Key=marker, Body=b"")
    return uri, True


def delete_endpoint_resources(client: Any, name: str, *, missing_ok: Callable[[Exception], bool]) -> None:
    """Endpoint, endpoint config and model of one name (sagetwin names all three alike)."""
    for call, kwargs in ((client.delete_endpoint, {"EndpointName": name}),
                         (client.delete_endpoint_config, {"EndpointConfigName": name}),
                         (client.delete_model, {"ModelName": name})):
        try:
            call(**kwargs)
        except Exception as exc:
            if not missing_ok(exc):
                raise
