"""Moving data between the twin's S3 and the run folders the backends read, and keeping the
twin's S3 on disk between runs (data uploaded once is there next time)."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from sagetwin.core.paths import inside, private_folders


class MissingData(LookupError):
    """An S3 location with nothing under it."""


def within(root: Path, key: str) -> Path:
    """``root / key`` for an object key (slashes allowed), refused unless it stays under ``root``."""
    target = Path(os.path.normpath(root / key))
    if os.path.isabs(key) or os.path.commonpath([target, os.path.normpath(root)]) != os.path.normpath(root) \
            or target == Path(os.path.normpath(root)):
        raise ValueError(f"the S3 key {key!r} would leave the folder {root}")
    return target


# S3's https addresses: virtual-hosted (bucket in the host name) and path-style (bucket first in the path)
_VIRTUAL_HOSTED = re.compile(r"^https://(?P<bucket>[a-z0-9][a-z0-9.-]*)\.s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com"
                             r"(?:/(?P<key>.*))?$")
_PATH_STYLE = re.compile(r"^https://s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com/(?P<bucket>[^/]+)(?:/(?P<key>.*))?$")


def split_uri(uri: str) -> tuple[str, str]:
    """Bucket and key of an ``s3://`` URI, or of an S3 ``https://`` address (which output paths
    such as ``AsyncInferenceConfig.OutputConfig.S3OutputPath`` may be)."""
    if uri.startswith("s3://"):
        bucket, _, key = uri[5:].partition("/")
        return bucket, key
    match = _PATH_STYLE.match(uri) or _VIRTUAL_HOSTED.match(uri)
    if match is None:
        raise ValueError(f"{uri!r} is neither an s3:// URI nor an S3 https:// address")
    return match["bucket"], match["key"] or ""


def _objects(client: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def fetch(client: Any, bucket: str, key: str, destination: Path) -> None:
    """One object into a file, streamed in one GET: boto3's ``download_file`` sets up a thread
    pool per call, which costs more than the transfer for the small files of a dataset or model
    folder read from 127.0.0.1."""
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    try:  # this user's alone, as the folders it lands in: objects hold people's models, code and data
        with open(os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
            shutil.copyfileobj(body, file, 1 << 20)
    finally:
        body.close()


def download_prefix(client: Any, uri: str, target: Path) -> int:
    """``S3Prefix`` semantics, File mode: every object under the prefix, placed relative to it."""
    bucket, prefix = split_uri(uri)
    try:
        keys = [key for key in _objects(client, bucket, prefix) if not key.endswith("/")]
    except client.exceptions.NoSuchBucket:
        keys = []
    if not keys:
        raise MissingData(uri)
    target.mkdir(parents=True, exist_ok=True)
    for key in keys:
        relative = key[len(prefix):].lstrip("/") or os.path.basename(key)
        destination = within(target, relative)
        destination.parent.mkdir(parents=True, exist_ok=True)
        fetch(client, bucket, key, destination)
    return len(keys)


def download_object(client: Any, uri: str, target: Path) -> Path:
    bucket, key = split_uri(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fetch(client, bucket, key, target)
    except Exception as exc:  # botocore's ClientError (404) or a missing bucket
        raise MissingData(uri) from exc
    return target


def upload_file(client: Any, path: Path, uri: str) -> str:
    bucket, key = split_uri(uri)
    client.upload_file(str(path), bucket, key)
    return uri


def save_all(client: Any, root: Path) -> int:
    """Write every bucket's objects under ``root/<bucket>/<key>``; return how many."""
    count = 0
    private_folders(root.parent, root.name)  # the twin's private buckets: this user's alone to read
    for bucket in client.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        bucket_dir = private_folders(root, inside(root, name).name)  # an empty bucket is kept too
        made: set[Path] = {bucket_dir}
        for key in _objects(client, name, ""):
            if key.endswith("/"):
                continue
            try:
                destination = within(bucket_dir, key)
                if destination.parent not in made:  # each folder made (0700) once, not once per object
                    made.add(private_folders(bucket_dir, *destination.parent.relative_to(bucket_dir).parts))
                fetch(client, name, key, destination)
            except (OSError, ValueError) as exc:  # a key that cannot be a file here ("a" beside "a/b", "x/../..")
                print(f"sagetwin aws: s3://{name}/{key} is not kept on disk: {exc}", file=sys.stderr)
                continue
            count += 1
    return count


def load_all(client: Any, root: Path) -> int:
    """Recreate the buckets and objects ``save_all`` wrote; return how many objects."""
    if not root.is_dir():
        return 0
    count = 0
    for bucket_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        region = client.meta.region_name
        client.create_bucket(Bucket=bucket_dir.name, **({} if region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": region}}))
        for path in sorted(p for p in bucket_dir.rglob("*") if p.is_file()):
            client.upload_file(str(path), bucket_dir.name, path.relative_to(bucket_dir).as_posix())
            count += 1
    return count
