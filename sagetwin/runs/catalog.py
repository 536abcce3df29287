"""Every run known on this machine, as one list: the records, and the run folders that have none
(left by the process backend before records existed), each with its folder and size on disk."""

from __future__ import annotations

import difflib
from datetime import datetime, timezone
from typing import Any

from sagetwin.core.errors import ConfigurationError
from sagetwin.core.paths import inside
from sagetwin.runs.folders import disk_usage, folder_record, run_folder, runs_root, unrecorded_folders
from sagetwin.runs.records import all_records, parse_time, read_record, records_dir, status_of

_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


def started_at(run: dict[str, Any]) -> datetime:
    return parse_time(run.get("started")) or _EPOCH


def _view(record: dict[str, Any], *, recorded: bool) -> dict[str, Any]:
    folder = run_folder(record)
    return {**record, "status": status_of(record), "recorded": recorded,
            "run_folder": str(folder) if folder else None, "size_bytes": disk_usage(folder) if folder else None}


def list_runs() -> list[dict[str, Any]]:
    """Newest first; ``status`` is the effective one (a dead "running" run is ``lost``)."""
    records = all_records()
    found = [_view(record, recorded=True) for record in records]
    found += [_view(folder_record(folder), recorded=False)
              for folder in unrecorded_folders({record["job_name"] for record in records})]
    return sorted(found, key=started_at, reverse=True)


def find_run(job_name: str) -> dict[str, Any]:
    """One run by job name; an unknown name is an error that names the closest ones."""
    record = read_record(job_name)
    if record is not None:
        return _view(record, recorded=True)
    folder = inside(runs_root(), job_name)
    if folder.is_dir() and not folder.is_symlink():
        return _view(folder_record(folder), recorded=False)
    names = [record["job_name"] for record in all_records()] + [path.name for path in unrecorded_folders(set())]
    close = difflib.get_close_matches(job_name, names, n=3, cutoff=0.6)
    raise ConfigurationError(
        f"there is no run named {job_name!r} in {records_dir()} or {runs_root()}"
        + (f"; did you mean {', '.join(close)}?" if close else "."),
        "run `sagetwin runs` to list the runs recorded on this machine.",
    )
