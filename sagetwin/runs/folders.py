"""Run folders on this machine: where a run's files are, how much disk they take, whether sagetwin
owns them (only those under its home folder may be deleted), and the folders the process backend
left before records existed."""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sagetwin.core.paths import home_dir
from sagetwin.runs.records import UNKNOWN


def runs_root() -> Path:
    """Where the process backend keeps its run folders (``home_dir()/runs/<job>``)."""
    return home_dir() / "runs"


def _local(uri: Any) -> Path | None:
    if not uri:
        return None
    parsed = urlparse(str(uri))
    if parsed.scheme not in ("", "file"):
        return None  # s3:// and the like: nothing on this machine
    return Path(parsed.path if parsed.scheme else str(uri)).expanduser()


def _from_model_data(model_data: Any, job: str) -> Path | None:
    """The nearest folder named after the job above ``model_data`` (``runs/<job>/output/model.tar.gz``
    for the process backend, ``runs/<job>/model.tar.gz`` for local mode). The nearest: a job named
    ``runs`` must never be taken for the folder of all runs."""
    path = _local(model_data)
    return next((parent for parent in path.parents if parent.name == job), None) if path else None


def run_folder(record: dict[str, Any]) -> Path | None:
    """The run's folder on this machine, if it is here: the backend's ``details["run_dir"]``, the
    folder above its ``model_data``, its ``output_path`` folder, or ``home_dir()/runs/<job>`` (where a
    failed process run leaves its files)."""
    job = str(record.get("job_name") or "")
    details = record.get("details") if isinstance(record.get("details"), dict) else {}
    output_path = _local(record.get("output_path"))
    candidates = [_local(details.get("run_dir")), _from_model_data(record.get("model_data"), job),
                  output_path / job if output_path and job else None, runs_root() / job if job else None]
    return next((path for path in candidates if path is not None and path.is_dir()), None)


def owned(folder: Path, job: str) -> bool:
    """Whether sagetwin may delete ``folder``: a real folder named after the job, at least two levels
    inside its home folder (``runs/<job>``: never ``runs`` itself). A person's own ``output_path`` (or
    a symlink out of the home folder) never is."""
    home = home_dir().resolve()
    if folder.is_symlink() or folder.name != job:
        return False
    resolved = folder.resolve()
    return resolved.name == job and home in resolved.parents and len(resolved.relative_to(home).parts) >= 2


def disk_usage(folder: Path) -> int:
    """Bytes the folder takes on disk (allocated blocks; hard links counted once; links not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512 if hasattr(info, "st_blocks") else info.st_size
    return total


def remove_folder(folder: Path) -> list[str]:
    """Delete the folder; the paths that could not be removed (root-owned files a container wrote)."""
    failed: list[str] = []

    def note(_func: Any, path: str, _exc: Any) -> None:
        failed.append(path)

    if sys.version_info >= (3, 12):
        shutil.rmtree(folder, onexc=note)
    else:
        shutil.rmtree(folder, onerror=note)
    return failed


def _metrics(folder: Path) -> dict[str, float]:
    from sagetwin.emulation.artifacts import metrics_from_archive, read_metrics

    try:
        data = folder / "opt_ml" / "output" / "data"
        return read_metrics(data) if data.is_dir() else metrics_from_archive(folder / "output" / "output.tar.gz")
    except (OSError, ValueError, AttributeError, tarfile.TarError, EOFError):
        return {}


def folder_record(folder: Path) -> dict[str, Any]:
    """A record for a run folder that has none: what its files tell (status unknown)."""
    model = folder / "output" / "model.tar.gz"
    log = folder / "training.log"
    started = datetime.fromtimestamp(folder.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    return {
        "job_name": folder.name, "backend": "process" if (folder / "opt_ml").is_dir() else UNKNOWN,
        "status": UNKNOWN, "started": started, "metrics": _metrics(folder),
        "model_data": model.resolve().as_uri() if model.is_file() else None,
        "details": {"run_dir": str(folder), **({"log": str(log)} if log.is_file() else {})},
    }


def unrecorded_folders(recorded: set[str]) -> list[Path]:
    """Folders under ``runs_root()`` that no record speaks for."""
    root = runs_root()
    if not root.is_dir():
        return []
    return sorted(path for path in root.iterdir()
                  if path.is_dir() and not path.is_symlink() and not path.name.startswith(".")
                  and path.name not in recorded)
