"""The twins running on this machine, found through the files they keep under sagetwin's home
while they run (``aws/running/<pid>.json``, ``aws/work/twin-*``), and their endpoints, for
``sagetwin endpoints``. A twin killed outright (SIGTERM in a script, SIGKILL) leaves both behind: the
next twin's start and ``sagetwin doctor`` remove them."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from sagetwin.core.backend import Check
from sagetwin.core.liveness import process_gone, process_identity
from sagetwin.core.paths import home_folder, private_folders

WORK_PREFIX = "twin-"  # the twin's work folders: aws/work/twin-<time>-<hex>


def registry_dir() -> Path:
    return home_folder("aws", "running")


def register(pid: int, url: str, backend: str, region: str, credentials: dict[str, str],
             work_dir: Path | None = None) -> Path:
    """Write this twin's entry (with the credentials it accepts: readable by this user only), naming
    its process (pid and start time) and its work folder, so that whatever a killed twin leaves can be
    told from a running twin's; the caller removes it when the twin stops. What killed twins left
    goes first."""
    reap_leftovers()
    entry = registry_dir() / f"{pid}.json"
    descriptor = os.open(entry, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.fchmod(descriptor, 0o600)  # an entry left by an older version keeps its mode through O_CREAT
    if work_dir is not None and work_dir.is_dir():  # made with the umask's mode: what jobs fetch is private
        private_folders(work_dir.parent.parent, work_dir.parent.name, work_dir.name)
    with os.fdopen(descriptor, "w") as file:
        json.dump({**process_identity(pid), "url": url, "backend": backend, "region": region,
                   "credentials": credentials, "work_dir": str(work_dir) if work_dir else None}, file)
    return entry


def _read(entry: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(entry.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _gone(record: dict[str, Any]) -> bool:
    """The entry's twin no longer runs (an entry of an earlier version has no start time: its pid tells)."""
    return isinstance(record.get("pid"), int) and process_gone(record)


def _work_folder(record: dict[str, Any]) -> Path | None:
    """The entry's work folder, if it is one of the twin's (``aws/work/twin-*``): an entry never
    makes sagetwin delete anything else."""
    if not record.get("work_dir"):
        return None
    folder = Path(str(record["work_dir"]))
    work_root = home_folder("aws") / "work"
    owned = folder.name.startswith(WORK_PREFIX) and not folder.is_symlink() and \
        folder.parent.resolve() == work_root.resolve()
    return folder if owned else None


def reap_leftovers() -> list[str]:
    """Remove the entries of twins whose process is gone (or whose pid a later process took), and
    their work folders; returns what was removed."""
    folder = registry_dir()
    removed = []
    for entry in sorted(folder.glob("*.json")):
        record = _read(entry)
        if record is None or not _gone(record):
            continue
        work = _work_folder(record)
        if work is not None and work.exists():
            shutil.rmtree(work, ignore_errors=True)
            removed.append(str(work))
        entry.unlink(missing_ok=True)
        removed.append(str(entry))
    return removed


def leftovers_check() -> Check:
    """`sagetwin doctor`: what killed twins left is removed (it is provably nobody's) and said."""
    removed = reap_leftovers()
    entries = sum(path.endswith(".json") for path in removed)
    return Check(True, f"removed {entries} entry(ies) and {len(removed) - entries} work folder(s) left by twins "
                       "that were killed" if removed else "none", name="aws: no files left by killed twins")


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
    reap_leftovers()  # a twin that was killed: its endpoints went with it
    for entry in sorted(registry_dir().glob("*.json")):
        record = _read(entry)
        if record is None or "credentials" not in record or "url" not in record:
            continue
        found.append((f"aws-twin ({record.get('backend')})",
                       TwinEndpointLister(record["url"], record.get("region", "us-east-1"), record["credentials"])))
    return found
