"""Runs a command and ends its whole process group when the process that started it dies.

``python -I -S lifeline.py FD [--opt-ml RUN STATE HOST HOSTS WORKDIR] -- COMMAND...`` (a script:
starting it imports nothing). ``--opt-ml``: the command sees RUN at /opt/ml (``container_paths``). FD is the
read end of a pipe whose write end only the starting process holds. The kernel closes it when that process ends, however
it ends (SIGKILL included), which no thread-bound ``PR_SET_PDEATHSIG`` and no ``preexec_fn``
(unsafe after fork in a threaded program) can promise. Exits with the command's exit code.

A SIGTERM to the group reaches the command too; this wrapper then waits for the command, so a
script that saves its work on SIGTERM (as SageMaker lets it, before its SIGKILL) is given the
time its stopper grants, and its exit code is its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

ORPHAN_GRACE_S = 10.0  # the parent is gone: SIGTERM, then SIGKILL for a command that ignores it


_orphaned = threading.Event()
_terminated: list[int] = []  # the group's SIGTERM, once it came


def _end_group_when_parent_goes(fd: int) -> None:
    try:
        while os.read(fd, 1):
            pass
    except OSError:
        pass
    _orphaned.set()
    if not _terminated:  # a stop that was under way already had its grace
        os.killpg(os.getpgid(0), signal.SIGTERM)  # the command and anything it started
        time.sleep(ORPHAN_GRACE_S)
    os.killpg(os.getpgid(0), signal.SIGKILL)  # this process too


def _enter_opt_ml(run_folder: str, state: str, host: str, hosts: str, workdir: str) -> str | None:
    """Before any thread starts (a user namespace needs a single-threaded process): the error, if any."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("container_paths", os.path.join(os.path.dirname(__file__),
                                                                                  "container_paths.py"))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    try:
        module.enter(run_folder, state, host, hosts.split(","), workdir)
    except Exception as exc:  # never run the command outside its namespaces
        return f"sagetwin: could not show the run folder at /opt/ml: {exc}"
    return None


def main(argv: list[str]) -> int:
    fd, *rest = argv
    if rest[:1] == ["--opt-ml"] and len(rest) > 6:
        error = _enter_opt_ml(*rest[1:6])
        if error:
            print(error, file=sys.stderr)
            return 125
        rest = rest[6:]
    if len(rest) < 2 or rest[0] != "--":
        print("usage: python lifeline.py FD [--opt-ml RUN STATE HOST HOSTS WORKDIR] -- COMMAND...", file=sys.stderr)
        return 2
    command = rest[1:]
    signal.signal(signal.SIGTERM, lambda signum, _frame: _terminated.append(signum))  # wait for the command
    threading.Thread(target=_end_group_when_parent_goes, args=(int(fd),), daemon=True).start()
    try:
        child = subprocess.Popen(command)
    except FileNotFoundError as exc:
        print(f"sagetwin: cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127
    if _terminated:  # the group's SIGTERM came before the command existed
        child.terminate()
    code = child.wait()
    if _orphaned.is_set():  # nobody is left to stop what the command started: it goes with this process
        os.killpg(os.getpgid(0), signal.SIGKILL)
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell reports it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
