"""The record store: one JSON file per training run under ``home_dir()/run-records``.

A record is written when a run starts (status ``running`` and the pid of the process running it)
and rewritten when it ends. Each write goes to a temporary file renamed into place, so a reader
never sees half a record, even if the process dies mid-write.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sagetwin.core.errors import SagetwinError
from sagetwin.core.paths import home_dir, home_folder, inside
from sagetwin.core.spec import TrainingResult, TrainingSpec

RECORDS_FOLDER = "run-records"
RUNNING, COMPLETED, FAILED, INTERRUPTED = "running", "completed", "failed", "interrupted"
LOST = "lost"  # "running", but the process that ran it is gone: it ended without writing how
UNKNOWN = "unknown"  # a run folder older than the records, or a record that cannot be read


def records_dir() -> Path:
    return home_dir() / RECORDS_FOLDER


def record_path(job_name: str) -> Path:
    """The record's file; job names are validated already, ``inside`` keeps a bad one out anyway."""
    return inside(records_dir(), f"{job_name}.json")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_time(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def write_record(record: dict[str, Any]) -> Path:
    path = record_path(record["job_name"])
    home_folder(RECORDS_FOLDER)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def read_record(job_name: str) -> dict[str, Any] | None:
    """The record of ``job_name``, None if there is none; an unreadable one comes back as status
    ``unknown`` so that it can still be listed and pruned."""
    path = record_path(job_name)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"job_name": job_name, "status": UNKNOWN, "error": f"unreadable record {path}: {exc}"}
    if not isinstance(data, dict):
        return {"job_name": job_name, "status": UNKNOWN, "error": f"unreadable record {path}: not an object"}
    data["job_name"] = job_name  # the file name is the key: a record never speaks for another job
    return data


def all_records() -> list[dict[str, Any]]:
    folder = records_dir()
    if not folder.is_dir():
        return []
    found = (read_record(path.stem) for path in sorted(folder.glob("*.json")) if not path.name.startswith("."))
    return [record for record in found if record is not None]


def delete_record(job_name: str) -> bool:
    try:
        record_path(job_name).unlink()
    except FileNotFoundError:
        return False
    return True


def _resolved(spec: TrainingSpec) -> dict[str, str]:
    """The stack the job runs, whatever form (alias or full) its versions were given in."""
    from sagetwin.core.versions import resolve_stack

    try:
        stack = resolve_stack(spec.transformers_version, spec.pytorch_version, spec.py_version, scope="training")
    except SagetwinError:  # an image_uri job may name versions the table lacks
        return {"transformers": spec.transformers_version, "pytorch": spec.pytorch_version, "py": spec.py_version}
    return {"transformers": stack.transformers, "pytorch": stack.pytorch, "py": stack.py}


def started_record(spec: TrainingSpec, backend: str) -> dict[str, Any]:
    return {
        "job_name": spec.job_name, "backend": backend,
        "stack": _resolved(spec),
        "instance_type": spec.instance_type, "instance_count": spec.instance_count,
        "entry_point": spec.entry_point, "source_dir": str(spec.source_dir), "output_path": spec.output_path,
        "hyperparameters": spec.hyperparameters,
        "started": now_iso(), "status": RUNNING, "pid": os.getpid(), "host": socket.gethostname(),
    }


def finished_record(record: dict[str, Any], result: TrainingResult | None, error: BaseException | None
                    ) -> dict[str, Any]:
    """``record`` (as written at the start) with how the run ended."""
    started = parse_time(record.get("started"))
    wall = (datetime.now(timezone.utc) - started).total_seconds() if started else None
    done = {**record, "finished": now_iso()}
    if result is not None:
        done.update(status=COMPLETED, duration_s=round(result.duration_s or wall or 0.0, 3), metrics=result.metrics,
                    model_data=result.model_data, output_data=result.output_data, details=result.details,
                    log_history=result.log_history)
        return done
    lines = str(error).strip().splitlines() if error is not None else []
    done.update(status=INTERRUPTED if isinstance(error, KeyboardInterrupt) else FAILED,
                duration_s=round(wall, 3) if wall is not None else None,
                error_type=type(error).__name__ if error is not None else None,
                error=lines[0] if lines else type(error).__name__)
    return done


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:  # someone else's process of that pid: alive
        return True
    except OSError:
        return False
    return True


def still_running(record: dict[str, Any]) -> bool:
    """Running by its record and its process is alive (a run recorded on another host, through a
    shared home folder, cannot be checked from here: it counts as running)."""
    if record.get("status") != RUNNING:
        return False
    return record.get("host", socket.gethostname()) != socket.gethostname() or pid_alive(record.get("pid"))


def status_of(record: dict[str, Any]) -> str:
    status = record.get("status") or UNKNOWN
    return LOST if status == RUNNING and not still_running(record) else status
