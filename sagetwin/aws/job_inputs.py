"""A twin training job's inputs fetched as the service fetches them: the code archive from
``sagemaker_submit_directory`` and each S3 channel into the job's folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sagetwin.aws.job_state import JobFailed
from sagetwin.aws.s3 import MissingData, download_object, download_prefix
from sagetwin.core.errors import ConfigurationError
from sagetwin.core.paths import inside
from sagetwin.emulation.archives import ArchiveError, extract_archive


def fetch_code(s3: Any, uri: str, target: Path) -> Path:
    """The job's ``sourcedir.tar.gz`` unpacked by sagetwin's own member checks: the twin runs
    code on request, so a link or ``..`` member must not write outside the job's folder."""
    if not uri.startswith("s3://"):
        target.mkdir(parents=True, exist_ok=True)
        return target
    archive = download_object(s3, uri, target.parent / "sourcedir.tar.gz")
    if target.exists():
        shutil.rmtree(target)
    try:
        extract_archive(archive, target, name=uri, compression="*")
    except ArchiveError as exc:
        raise JobFailed(f"AlgorithmError: {exc}") from None
    return target


def check_program(code: Path, program: str, submitted: str) -> None:
    """The toolkit's entry point (``sagemaker_program``) must be a file of the code it was sent."""
    try:
        inside(code, program)
    except ConfigurationError:
        raise JobFailed(f"AlgorithmError: entry point {program!r} is not a file name inside the source directory.") \
            from None
    if not program or not (code / program).is_file():
        raise JobFailed(f"AlgorithmError: entry point {program!r} was not found in {submitted or 'the job'}.")


def fetch_channels(s3: Any, region: str, request: dict[str, Any], target: Path) -> dict[str, str]:
    """Each channel's S3 prefix into ``target/<channel>``; a prefix with nothing under it fails
    the job in the service's words."""
    inputs: dict[str, str] = {}
    for channel in request.get("InputDataConfig") or []:
        name = channel["ChannelName"]
        uri = channel.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri", "")
        try:
            download_prefix(s3, uri, inside(target, name))
        except MissingData:
            raise JobFailed(
                f'ClientError: Data download failed:No S3 objects found under S3 URL "{uri}" given in input '
                f"data source. Please ensure that the bucket exists in the selected region ({region}), that "
                f'objects exist under that S3 prefix, and that the role "{request.get("RoleArn")}" has '
                f'"s3:ListBucket" permissions on bucket "{uri[5:].split("/")[0]}".') from None
        inputs[name] = str(inside(target, name))
    return inputs
