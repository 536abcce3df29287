"""The twins running on this machine, found through the files they keep under sagetwin's home
while they run, and their endpoints, for ``sagetwin endpoints``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from sagetwin.core.paths import home_dir


def registry_dir() -> Path:
    return home_dir() / "aws" / "running"


def register(pid: int, url: str, backend: str, region: str, credentials: dict[str, str]) -> Path:
    """Write this twin's entry (with the credentials it accepts: readable by this user only);
    the caller removes it when the twin stops."""
    registry_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    entry = registry_dir() / f"{pid}.json"
    descriptor = os.open(entry, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump({"pid": pid, "url": url, "backend": backend, "region": region, "credentials": credentials}, file)
    return entry


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TwinEndpointLister:
    """A running twin's endpoints, listed and deleted through its own API."""

    def __init__(self, url: str, region: str, credentials: dict[str, str]) -> None:
        import boto3

        self.url = url
        session = boto3.session.Session(region_name=region, aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                                        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
                                        aws_session_token=credentials.get("AWS_SESSION_TOKEN"))
        self.client = session.client("sagemaker", endpoint_url=url)

    def list_endpoints(self) -> list[dict[str, Any]]:
        rows = []
        for endpoint in self.client.list_endpoints().get("Endpoints", []):
            age_h = (time.time() - endpoint["CreationTime"].timestamp()) / 3600
            rows.append({"name": endpoint["EndpointName"], "status": endpoint["EndpointStatus"],
                         "age_hours": round(age_h, 2), "hourly_usd": 0.0, "instances": [f"twin at {self.url}"]})
        return rows

    def delete_endpoint(self, name: str) -> None:
        self.client.delete_endpoint(EndpointName=name)


def running_twin_listers() -> list[tuple[str, TwinEndpointLister]]:
    found = []
    folder = registry_dir()
    for entry in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(entry.read_text())
        except (OSError, ValueError):
            continue
        if not _alive(int(record.get("pid", 0))):
            entry.unlink(missing_ok=True)  # a twin that was killed: its endpoints went with it
            continue
        found.append((f"aws-twin ({record.get('backend')})",
                       TwinEndpointLister(record["url"], record.get("region", "us-east-1"), record["credentials"])))
    return found
