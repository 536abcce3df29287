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


def register(pid: int, url: str, backend: str) -> Path:
    """Write this twin's entry; the caller removes it when the twin stops."""
    registry_dir().mkdir(parents=True, exist_ok=True)
    entry = registry_dir() / f"{pid}.json"
    entry.write_text(json.dumps({"pid": pid, "url": url, "backend": backend}))
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

    def __init__(self, url: str) -> None:
        import boto3

        self.url = url
        session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="sagetwin",
                                        aws_secret_access_key="sagetwin")
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
        found.append((f"aws-twin ({record.get('backend')})", TwinEndpointLister(record["url"])))
    return found
