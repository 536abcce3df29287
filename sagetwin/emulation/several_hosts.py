"""A job's hosts run at once as processes of this machine, as SageMaker runs its instances: each
output line tagged with its host (``algo-2 | text``, ``core.host_lines``), the first host to fail
stops the others (SageMaker fails the job), and every host stopped on any error or Ctrl-C."""

from __future__ import annotations

import collections
import queue
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sagetwin.core.host_lines import tagged
from sagetwin.core.progress import Reporter
from sagetwin.emulation import container_paths
from sagetwin.emulation.processes import copy_lines, spawn, stop


@dataclass(frozen=True)
class HostRun:
    """One host's command, environment and working folder (``opt_ml``: see ``processes.spawn``)."""

    host: str
    cmd: list[str]
    env: dict[str, str] | None
    cwd: Path
    opt_ml: Sequence[str] = field(default=())


class _HostLines:
    """A reporter that tags each line with its host; steps pass through unchanged. The hosts'
    readers share ``lock``: one host's line never lands in the middle of another's."""

    def __init__(self, reporter: Reporter, host: str, lock: threading.Lock) -> None:
        self.reporter, self.host, self.lock = reporter, host, lock

    def step(self, message: str) -> None:
        with self.lock:
            self.reporter.step(message)

    def log(self, line: str) -> None:
        with self.lock:
            self.reporter.log(tagged(self.host, line))


class _SharedLog:
    """One log file written line by line from several readers."""

    def __init__(self, log: IO[str]) -> None:
        self._log, self._lock = log, threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            self._log.write(text)


def _first_failure_or_all_done(procs: list[subprocess.Popen]) -> int:
    """The first non-zero exit code as hosts end, or 0 once every host ended well."""
    ended: queue.Queue[int] = queue.Queue()
    for proc in procs:
        threading.Thread(target=lambda p=proc: ended.put(p.wait()), daemon=True).start()
    for _ in procs:
        code = ended.get()
        if code != 0:
            return code
    return 0


def run_streaming(cmd: Sequence[str], *, env: dict[str, str] | None, cwd: Path, reporter: Reporter, log_path: Path,
                  tail_lines: int = 30, opt_ml: Sequence[str] = ()) -> tuple[int, str]:
    """One command to completion, its output echoed to ``reporter`` and ``log_path``: (exit code, tail).
    When it exits, helpers it left behind are stopped with its process group; Ctrl-C (or any error
    here) stops the group too."""
    return run_hosts([HostRun("algo-1", list(cmd), env, cwd, opt_ml)], reporter=reporter, log_path=log_path,
                     tail_lines=tail_lines)


def run_hosts(runs: list[HostRun], *, reporter: Reporter, log_path: Path, tail_lines: int = 30) -> tuple[int, str]:
    """Run every host to its end; return (the job's exit code, the last lines of all hosts). With
    several hosts each line is tagged with its host."""
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    procs: list[subprocess.Popen] = []
    try:
        for run in runs:
            procs.append(spawn(run.cmd, env=run.env, cwd=run.cwd, opt_ml=run.opt_ml))
        with open(log_path, "w", encoding="utf-8", errors="replace") as raw_log:
            log, lock = _SharedLog(raw_log), threading.Lock()
            readers = [threading.Thread(target=copy_lines, args=(
                proc, log, tail, _HostLines(reporter, run.host, lock) if len(runs) > 1 else reporter), daemon=True)
                for proc, run in zip(procs, runs, strict=True)]
            for reader in readers:
                reader.start()
            code = _first_failure_or_all_done(procs)
            _stop_all(procs, grace=2.0)  # a failed host ends the job: the others stop with it, as on SageMaker
            for reader in readers:
                reader.join(timeout=5.0)
        return code, "\n".join(tail)
    finally:
        _stop_all(procs, grace=10.0)
        for run in runs:
            if run.opt_ml:  # the namespace's overlay work folder, removable again
                container_paths.release(run.opt_ml[1])


def _stop_all(procs: list[subprocess.Popen], grace: float) -> None:
    """Every host's group stopped at once (SIGTERM to all, then each waited for), not one by one."""
    stoppers = [threading.Thread(target=stop, args=(proc,), kwargs={"grace": grace}) for proc in procs]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()
