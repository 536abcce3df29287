"""AWS plumbing shared by the SDK-based backends: sessions that honour endpoint overrides,
telemetry opted out, clear errors for missing credentials, region and role."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sagetwin.core.errors import BackendUnavailableError, ConfigurationError

# SDK defaults config given to each Session we build: no telemetry call on every operation.
SDK_CONFIG: dict[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}
MANAGED_TAG = "sagetwin:managed"
RUN_TAG = "sagetwin:run"
UPLOAD_MARKER = ".sagetwin-complete"


def import_sdk() -> Any:
    """Import the SageMaker SDK v2 quietly (its v2 deprecation banner is not news to our users)."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    import logging
    import sys

    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    logging.getLogger("botocore.configprovider").setLevel(logging.WARNING)
    if "sagemaker" not in sys.modules:
        # Importing the SDK builds a default Session (sagemaker.jumpstart.constants), which walks the
        # credential chain; without credentials that ends probing the EC2 metadata service over the
        # network. Keep that probe off for the import only: our own sessions still use instance roles.
        with no_metadata_probe():
            import sagemaker  # noqa: F401
    if "sagemaker.experiments" not in sys.modules:
        # Imported by Estimator.fit, it calls logging.basicConfig(level=INFO) for the whole process
        # (sagemaker/experiments/_metrics.py): import it now, and leave the person's logging as it was.
        with root_logging_kept():
            import sagemaker.experiments  # noqa: F401
    _validate_each_config_once()
    return sys.modules["sagemaker"]


@contextlib.contextmanager
def root_logging_kept() -> Iterator[None]:
    """Undo a library's logging.basicConfig: handlers and level of the root logger stay as they were."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)


@contextlib.contextmanager
def interrupts_kept() -> Iterator[None]:
    """SDK v2's telemetry decorator (around fit, deploy, ...) returns from a ``finally:`` block, which
    silently drops a KeyboardInterrupt raised inside the call: Ctrl-C during local training or while
    an endpoint starts would be lost and the run carry on. Remember the interrupt and raise it
    again when the SDK returns. Only Python-level handlers (Ctrl-C's, the CLI's SIGTERM) are wrapped."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[BaseException] = []
    previous: dict[int, Callable[..., Any]] = {}

    def remember(signum: int, frame: Any) -> None:
        try:
            previous[signum](signum, frame)
        except BaseException as exc:
            caught.append(exc)
            raise

    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if callable(handler):
            previous[signum] = handler
            signal.signal(signum, remember)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if caught:
        raise caught[0]


def _validate_each_config_once() -> None:
    """The SDK checks its whole defaults config against its JSON schema (the schema itself included)
    at session creation and on every config lookup: 0.14 s each, about 30 times per local deploy, 4 s
    of a 2-core laptop spent before the container even starts."""
    import importlib

    import sagemaker.config.config as config_module

    original = config_module.validate_sagemaker_config
    if hasattr(original, "__wrapped__"):
        return
    remembering = remember_valid_configs(original)
    for name in ("sagemaker.config.config", "sagemaker.config", "sagemaker.session", "sagemaker.utils",
                 "sagemaker.local.local_session"):
        module = importlib.import_module(name)
        if getattr(module, "validate_sagemaker_config", None) is original:
            module.validate_sagemaker_config = remembering


def remember_valid_configs(validate: Callable[[Any], None]) -> Callable[[Any], None]:
    """Validation is pure: a config that passed once passes again, and any other is still checked
    (and still raises)."""
    import functools
    import json

    valid: set[str] = set()

    @functools.wraps(validate)
    def validate_once(config: Any = None) -> None:
        key = json.dumps(config, sort_keys=True, default=repr)
        if key not in valid:
            validate(config)
            valid.add(key)

    return validate_once


@contextlib.contextmanager
def no_metadata_probe() -> Iterator[None]:
    """Switch the EC2 instance-metadata credential probe off for a while (it is a network call)."""
    saved = os.environ.get("AWS_EC2_METADATA_DISABLED")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AWS_EC2_METADATA_DISABLED", None)
        else:
            os.environ["AWS_EC2_METADATA_DISABLED"] = saved


def botocore_config() -> Any:
    from botocore.config import Config

    # Throttling is retried by botocore's standard retry mode, with backoff.
    return Config(retries={"mode": "standard", "max_attempts": 10}, connect_timeout=10, read_timeout=120)


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


def ensure_bucket(session: Any, bucket: str) -> str:
    from botocore.exceptions import ClientError

    s3 = session.client("s3", config=botocore_config())
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise ConfigurationError(f"S3 bucket {bucket} is not usable: {exc}.",
                                     "pass bucket= a bucket you own, or check your permissions.") from None
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if session.region_name != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": session.region_name}
        s3.create_bucket(**kwargs)
    return bucket


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


def upload_once(session: Any, path: Path, bucket: str, prefix: str = "sagetwin/inputs") -> tuple[str, bool]:
    """Upload a local file/folder under its content hash; reuse an earlier upload. Returns (uri, uploaded)."""
    s3 = session.client("s3", config=botocore_config())
    key_prefix = f"{prefix}/{folder_digest(path)}"
    uri = f"s3://{bucket}/{key_prefix}"
    marker = f"{key_prefix}{UPLOAD_MARKER}"  # beside the data, so it never lands in the channel
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=marker, MaxKeys=1)
    if listed.get("KeyCount", 0):
        return uri, False
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        relative = file.name if path.is_file() else str(file.relative_to(path))
        s3.upload_file(str(file), bucket, f"{key_prefix}/{relative}")
    s3.put_object(Bucket=bucket, Key=marker, Body=b"")
    return uri, True


class RequestRecorder:
    """For --dry-run: record every AWS request the SDK makes and answer it locally, so nothing is sent.

    Registered on a boto3 session's ``before-call`` event, which lets a handler return the
    response instead of sending the request; the answers are the minimum the SDK needs to go on.
    """

    def __init__(self, account: str = "000000000000", region: str = "us-east-1") -> None:
        self.account = account
        self.region = region
        self.calls: list[dict[str, Any]] = []
        self._training: dict[str, dict[str, Any]] = {}

    def attach(self, session: Any) -> None:
        session.events.register("before-parameter-build", self._record)
        session.events.register("before-call", self._answer_locally)

    def _record(self, params: dict[str, Any], model: Any, context: dict[str, Any], **kwargs: Any) -> None:
        """The API parameters, as the caller gave them (before serialisation)."""
        context["sagetwin_params"] = dict(params)
        self.calls.append({"service": model.service_model.service_name, "operation": model.name,
                           "request": dict(params)})

    def _answer_locally(self, model: Any, context: dict[str, Any], **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Returning a response from before-call skips sending the request (and signing it)."""
        params = context.get("sagetwin_params", {})
        return _FakeHTTPResponse(), self._answer(model.service_model.service_name, model.name, params)

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{kind}/{name.lower()}"

    def _answer(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        meta = {"ResponseMetadata": {"HTTPStatusCode": 200, "RequestId": "dry-run"}}
        if service == "sts":
            return {**meta, "Account": self.account, "Arn": f"arn:aws:iam::{self.account}:user/dry-run",
                    "UserId": "DRYRUN"}
        if service == "s3" and operation == "GetObject":
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "dry run: nothing was written"}}, operation)
        if service == "s3":
            return {**meta, "KeyCount": 0, "Contents": [], "ETag": '"dry-run"', "Buckets": [],
                    "Owner": {"ID": self.account}}
        if operation == "CreateTrainingJob":
            self._training[params["TrainingJobName"]] = params
            return {**meta, "TrainingJobArn": self._arn("training-job", params["TrainingJobName"])}
        if operation == "DescribeTrainingJob":
            name = params["TrainingJobName"]
            created = self._training.get(name, {})
            output = created.get("OutputDataConfig", {}).get("S3OutputPath", "s3://dry-run")
            return {**meta, "TrainingJobName": name, "TrainingJobArn": self._arn("training-job", name),
                    "TrainingJobStatus": "Completed", "SecondaryStatus": "Completed",
                    "ModelArtifacts": {"S3ModelArtifacts": f"{output}/{name}/output/model.tar.gz"},
                    "AlgorithmSpecification": created.get("AlgorithmSpecification", {}),
                    "ResourceConfig": created.get("ResourceConfig", {}), "HyperParameters":
                    created.get("HyperParameters", {}), "RoleArn": created.get("RoleArn", ""),
                    "StoppingCondition": created.get("StoppingCondition", {}), "FinalMetricDataList": []}
        if operation.startswith("Create"):
            kind = {"CreateModel": "ModelArn", "CreateEndpointConfig": "EndpointConfigArn",
                    "CreateEndpoint": "EndpointArn"}.get(operation, "Arn")
            return {**meta, kind: self._arn(operation[6:].lower(), next(iter(params.values()), "x"))}
        if operation == "DescribeEndpoint":
            return {**meta, "EndpointName": params["EndpointName"], "EndpointStatus": "InService",
                    "EndpointConfigName": params["EndpointName"],
                    "EndpointArn": self._arn("endpoint", params["EndpointName"])}
        if service == "logs":
            return {**meta, "logStreams": [], "events": []}
        return meta

    def launches(self) -> list[dict[str, Any]]:
        """The requests that would create billed resources, in order."""
        wanted = ("CreateTrainingJob", "CreateModel", "CreateEndpointConfig", "CreateEndpoint")
        return [c for c in self.calls if c["operation"] in wanted]


class _FakeHTTPResponse:
    status_code = 200
    headers: dict[str, str] = {}
    raw = None
    content = b""


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
