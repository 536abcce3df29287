"""What a SageMaker model record becomes on a backend: the container's image → stack, its
``ModelDataUrl`` (or ``ModelDataSource``) fetched from the twin's S3 and checked, or its ``HF_MODEL_ID`` for the
inference toolkit to load — shared by endpoints and transform jobs, as both host a model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sagetwin.aws.images import UnsupportedImage, stack_of
from sagetwin.aws.s3 import MissingData, download_object, download_prefix
from sagetwin.core.containers import server_of, server_version
from sagetwin.core.spec import DeploySpec
from sagetwin.emulation.archives import ArchiveError, NotAnArchive, check_archive
from sagetwin.emulation.artifacts import pack_model
from sagetwin.emulation.model_sources import MODEL_ID


class HostingFailed(Exception):
    """Ends the hosting resource's creation (endpoint, transform job) with this FailureReason."""


def container_of(model: dict[str, Any]) -> dict[str, Any]:
    return model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]


def hosting_spec(clients: Any, model_name: str, name: str, folder: Path, *, instance_type: str | None,
                 instance_count: int = 1, environment: dict[str, str] | None = None,
                 invocation_timeout: float = 60.0, startup_timeout: float | None = None) -> DeploySpec:
    """The DeploySpec that serves ``model_name`` as ``name``; the archive is fetched into ``folder``."""
    try:
        model = clients.sagemaker.describe_model(ModelName=model_name)
    except clients.sagemaker.exceptions.ClientError:
        raise HostingFailed(f"Could not find model \"arn:aws:sagemaker:{clients.region}:{clients.account}:model/"
                            f"{model_name.lower()}\".") from None
    container = container_of(model)
    server = server_of(container.get("Image", ""))
    try:
        stack = None if server != "inference-toolkit" else stack_of(container.get("Image", ""), "inference")
    except UnsupportedImage as exc:
        raise HostingFailed(str(exc)) from None
    env = {**(container.get("Environment") or {}), **(environment or {})}
    archive = model_archive(clients, container, folder)
    if archive is None and not env.get(MODEL_ID):
        raise HostingFailed("the model has neither a ModelDataUrl (or ModelDataSource) nor an HF_MODEL_ID in its "
                            "Environment: there is nothing for the container to load.")
    return DeploySpec(
        endpoint_name=name, model_data=None if archive is None else str(archive), instance_type=instance_type,
        initial_instance_count=instance_count, environment=env, invocation_timeout=invocation_timeout,
        startup_timeout=startup_timeout,
        transformers_version=stack and stack.transformers, pytorch_version=stack and stack.pytorch,
        py_version=stack and stack.py, role=model.get("ExecutionRoleArn"), server=server,
        server_version=server_version(container.get("Image", "")))


def model_archive(clients: Any, container: dict[str, Any], folder: Path) -> Path | None:
    """The container's model as an archive in ``folder``: its ``ModelDataUrl``, or its
    ``ModelDataSource`` — a ``model.tar.gz`` (``Gzip``), or the files under an S3 prefix as they
    are to appear in ``/opt/ml/model`` (``None``: uncompressed, as LLMs are often hosted)."""
    if uri := container.get("ModelDataUrl", ""):
        return fetch_model(clients, uri, folder / "model.tar.gz")
    source = (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
    uri, kind = source.get("S3Uri", ""), source.get("S3DataType")
    if not uri:
        return None
    if source.get("CompressionType") == "Gzip":
        if kind != "S3Object":
            raise HostingFailed(f"ModelDataSource {uri}: compressed model data (CompressionType Gzip) is one object; "
                                "use S3DataType S3Object.")
        return fetch_model(clients, uri, folder / "model.tar.gz")
    files = folder / "model"
    shutil.rmtree(files, ignore_errors=True)  # what an earlier endpoint of this name was given is not this model's
    name = uri.rsplit("/", 1)[-1]
    if kind == "S3Object" and name in ("", ".", ".."):
        raise HostingFailed(f"ModelDataSource {uri}: an S3Object is one object; name its key, not a folder.")
    if kind != "S3Object" and not uri.endswith("/"):
        raise HostingFailed(f"ModelDataSource {uri}: an S3Prefix of uncompressed model data names a folder and ends "
                            f"with '/' (s3://.../{name}/).")
    try:
        if kind == "S3Object":
            download_object(clients.s3, uri, files / name)
        else:
            download_prefix(clients.s3, uri, files)
    except MissingData:
        raise HostingFailed(f"Could not find model data at {uri}.") from None
    except ValueError as exc:  # a key that would land outside the model's folder
        raise HostingFailed(f"ModelDataSource {uri}: {exc}") from None
    return pack_model(files, folder / "model.tar.gz")


def fetch_model(clients: Any, uri: str, target: Path) -> Path:
    """The model's archive from the twin's S3, refused here (before any backend unpacks it) when
    it is not a tar.gz or holds a member that would write outside its folder."""
    try:
        archive = download_object(clients.s3, uri, target)
    except MissingData:
        raise HostingFailed(f"Could not find model data at {uri}.") from None
    try:
        check_archive(archive, name="the archive")
    except NotAnArchive:
        raise HostingFailed(f"Failed to extract model data archive from URL \"{uri}\". Please ensure that the "
                            "object located at the URL is a valid tar.gz archive.") from None
    except ArchiveError as exc:
        raise HostingFailed(f"Failed to extract model data archive from URL \"{uri}\": {exc}") from None
    return archive
