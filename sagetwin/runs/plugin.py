"""The runs plugin's hook implementations: a record per training run, and the `runs` command.

Keeping records must never break a training run: a record that cannot be written is a warning.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from sagetwin.core.hookspecs import hookimpl

_lock = threading.Lock()
# job name -> (the record written at its start, whether this run wrote it): a second job of a name
# already recorded is refused by the backend (as SageMaker refuses it) and leaves the first one's record alone
_started: dict[str, tuple[dict[str, Any], bool]] = {}


def _safely(what: str, job: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as exc:  # disk full, a read-only home: the run goes on without its record
        print(f"sagetwin: warning: could not {what} the run record of {job}: {type(exc).__name__}: {exc}",
              file=sys.stderr)


@hookimpl
def sagetwin_register_commands(subparsers):
    from sagetwin.runs import commands

    commands.register(subparsers)


@hookimpl
def sagetwin_training_started(spec, backend):
    from sagetwin.runs import records

    def start() -> None:
        record = records.started_record(spec, backend)
        fresh = not records.record_path(spec.job_name).exists()
        with _lock:
            _started[spec.job_name] = (record, fresh)
        if fresh:
            records.write_record(record)

    _safely("write", spec.job_name, start)


@hookimpl
def sagetwin_training_finished(spec, result, error):
    from sagetwin.runs import records

    def finish() -> None:
        with _lock:
            record, fresh = _started.pop(spec.job_name, (None, True))
        if not fresh and result is None:
            return  # this job was refused: the earlier job of that name keeps its record
        if record is None:  # started before this plugin was registered
            record = records.read_record(spec.job_name) or records.started_record(
                spec, result.backend if result is not None else "unknown")
        records.write_record(records.finished_record(record, result, error))

    _safely("update", spec.job_name, finish)
