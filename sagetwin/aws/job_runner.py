"""One twin training job, in its own process: ``python -m sagetwin.aws.job_runner ORDER.json``,
or ``... job_runner --next``: started ahead of time, its imports done, it waits for the order's
path on stdin (the twin keeps one such runner ready, so a job does not wait for them).

The twin starts this so that ``StopTrainingJob`` can stop a job at any moment (its process
group is stopped; the backend's own processes follow through their lifelines) and so that a
job never shares the twin's process. Every line on stdout is the job's log; the outcome is
written to the order's ``result`` path as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from sagetwin.core.errors import SagetwinError, TrainingError
from sagetwin.core.plugins import backend_entries
from sagetwin.core.selection import create_backend
from sagetwin.core.spec import TrainingSpec
from sagetwin.emulation.processes import signal_spawned


class PrintReporter:
    """The backend's progress and the script's output, one line each, as the job's log."""

    def step(self, message: str) -> None:
        self.log(message)

    def log(self, line: str) -> None:
        sys.stdout.write(line + "\n")  # one write: a line from another thread never splits it
        sys.stdout.flush()


def run(order: dict[str, Any]) -> dict[str, Any]:
    spec_fields = dict(order["spec"])
    spec_fields["source_dir"] = Path(spec_fields["source_dir"])
    spec = TrainingSpec(**spec_fields)
    try:
        backend = create_backend(order["backend"], **order.get("backend_options", {}))
        result = backend.fit(spec, PrintReporter())
    except TrainingError as exc:
        return {"ok": False, "error": exc.problem, "exit_code": exc.exit_code, "log_tail": exc.log_tail}
    except SagetwinError as exc:
        print(exc.render(), flush=True)
        return {"ok": False, "error": exc.problem, "exit_code": None, "log_tail": ""}
    return {"ok": True, "model_data": result.model_data, "output_data": result.output_data,
            "duration_s": result.duration_s, "metrics": result.metrics}


def pass_sigterm_on(signum: int, frame: object) -> None:
    """SageMaker stops a job (StopTrainingJob, its StoppingCondition, a spot interruption) with
    SIGTERM to the training script, and SIGKILL only after a grace period: the script gets the
    signal and this runner keeps its log flowing until it exits. A backend with no process of
    its own here (containers) unwinds as on Ctrl-C, through its own cleanup."""
    if not signal_spawned(signal.SIGTERM):
        raise KeyboardInterrupt


def wait_for_order() -> Path | None:
    """Load what every job needs (the backends' plugins), then wait for the twin to hand over
    an order; None when it stops first (stdin closed)."""
    with contextlib.suppress(Exception):  # a broken plugin is reported by the job itself, with its order
        backend_entries()
    line = sys.stdin.readline().strip()
    if not line:
        return None
    order_path = Path(line)
    os.chdir(order_path.parent)
    return order_path


def main(argv: list[str]) -> int:
    order_path = wait_for_order() if argv == ["--next"] else Path(argv[0])
    if order_path is None:
        return 0
    order = json.loads(order_path.read_text())
    signal.signal(signal.SIGTERM, pass_sigterm_on)
    try:
        outcome = run(order)
    except KeyboardInterrupt:  # SIGTERM with no script process here: the backend cleaned up as it unwound
        outcome = {"ok": False, "error": "the job was stopped (SIGTERM)", "exit_code": 143, "log_tail": ""}
    except Exception as exc:  # the twin reports it as the job's failure reason; the trace goes to the log
        traceback.print_exc()
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "exit_code": None, "log_tail": ""}
    Path(order["result"]).write_text(json.dumps(outcome))
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
