"""Choosing which runs ``sagetwin runs prune`` removes, and removing them: the record always, the
run folder only when sagetwin owns it (under its home folder), never a run that may still be running."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sagetwin.core.liveness import in_use
from sagetwin.core.paths import home_dir
from sagetwin.runs.catalog import started_at
from sagetwin.runs.folders import disk_usage, owned, remove_folder
from sagetwin.runs.records import RUNNING, delete_record
from sagetwin.runs.text import human_bytes

# A run folder is marked while a process works in it (`core.liveness.running_in`): a `sagetwin check`
# run keeps no record, and one paused at a breakpoint writes nothing for as long as the person looks.
# A folder made before the marks existed, with no record, counts as running if written this recently.
RECENT_S = 600


@dataclass(frozen=True)
class Plan:
    remove: list[dict[str, Any]]
    busy: list[tuple[dict[str, Any], str]]  # chosen by age or count, kept because it may be running

    @property
    def bytes(self) -> int:
        return sum(_freeable(run) for run in self.remove)


def _folder(run: dict[str, Any]) -> Path | None:
    return Path(run["run_folder"]) if run.get("run_folder") else None


def _freeable(run: dict[str, Any]) -> int:
    folder = _folder(run)
    return (run.get("size_bytes") or 0) if folder is not None and owned(folder, run["job_name"]) else 0


def _busy_reason(run: dict[str, Any]) -> str | None:
    if run["status"] == RUNNING:
        return f"still running (pid {run.get('pid')} on {run.get('host', 'this host')})"
    folder = _folder(run)
    marked = in_use(folder) if folder is not None else None
    if marked:
        return "a process still works in its folder (a `sagetwin check` run, or one paused at a breakpoint)"
    if marked is None and not run.get("recorded", True) and folder is not None:
        newest = max((p.stat().st_mtime for p in (folder, folder / "training.log") if p.exists()), default=0.0)
        if time.time() - newest < RECENT_S:
            return f"it has no record and its folder changed in the last {RECENT_S // 60} minutes: it may be running"
    return None


def plan(runs: list[dict[str, Any]], keep: int, older_than_days: float | None) -> Plan:
    """``runs`` newest first: everything after the ``keep`` newest, and (given) older than the cutoff."""
    cutoff = datetime.now(timezone.utc) - timedelta(days=older_than_days) if older_than_days is not None else None
    chosen = [run for run in runs[keep:] if cutoff is None or started_at(run) < cutoff]
    busy = [(run, reason) for run in chosen if (reason := _busy_reason(run))]
    return Plan([run for run in chosen if not _busy_reason(run)], busy)


def describe(run: dict[str, Any]) -> str:
    """What removing ``run`` does, for --dry-run and for the question before it."""
    job, folder = run["job_name"], _folder(run)
    if folder is None:
        return f"{job}: its record (no run folder on this machine)"
    if owned(folder, job):
        return f"{job}: its record and {folder} ({human_bytes(run.get('size_bytes'))})"
    return f"{job}: its record only; {folder} stays (outside {home_dir()}: yours to delete)"


def remove(run: dict[str, Any]) -> tuple[int, str]:
    """Remove one run; the bytes freed and a line saying what was done."""
    job, folder = run["job_name"], _folder(run)
    if folder is None or not owned(folder, job):
        delete_record(job)
        kept = (f"; kept {folder}: sagetwin only deletes folders under {home_dir()}, delete it yourself if you "
                "no longer need it") if folder is not None else ""
        return 0, f"removed the record of {job}{kept}"
    before = disk_usage(folder)
    failed = remove_folder(folder)
    freed = before - (disk_usage(folder) if folder.exists() else 0)
    if failed:
        return freed, (f"could not remove {len(failed)} path(s) in {folder} (e.g. {failed[0]}: files a container "
                       f"wrote as root?); kept the record of {job}")
    delete_record(job)
    return freed, f"removed {job} and {folder} ({human_bytes(freed)})"
