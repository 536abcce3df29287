"""Child processes and local ports: start, stream, wait for, and always clean up."""

from __future__ import annotations

import collections
import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from sagetwin.core.errors import ConfigurationError
from sagetwin.core.progress import Reporter


def spawn(cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
          stdout: int | object = subprocess.PIPE, stdin: int | object = subprocess.DEVNULL,
          opt_ml: Sequence[str] = ()) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (session), tied to this process's lifetime through a
    lifeline pipe (``lifeline``): it ends when this process ends, whichever thread started it. No
    ``preexec_fn``: nothing runs between fork and exec, so threaded programs spawn safely.
    ``stdin`` is closed unless asked for (e.g. a pipe to hand a started process its work).
    ``opt_ml``: (run folder, state folder, host, hosts, working folder) to see at /opt/ml
    (``container_paths``), entered by the lifeline before it starts the command."""
    read_end, write_end = os.pipe()
    os.set_inheritable(read_end, True)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", LIFELINE, str(read_end), *(["--opt-ml", *opt_ml] if opt_ml else []),
             "--", *cmd],
            env=env, cwd=cwd, stdout=stdout, stderr=subprocess.STDOUT, stdin=stdin,
            start_new_session=True, pass_fds=(read_end,),
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    _lifelines[proc.pid] = write_end  # held open until the group is stopped, or this process ends
    return proc


_lifelines: dict[int, int] = {}
LIFELINE = str(Path(__file__).with_name("lifeline.py"))  # run as a script: the standard library only


def signal_spawned(sig: int) -> int:
    """Send ``sig`` to every process group this process spawned and has not stopped yet (e.g. a
    job runner passing SageMaker's SIGTERM on to the script); returns how many were signalled."""
    sent = 0
    for pgid in list(_lifelines):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
            sent += 1
    return sent


def _let_go(proc: subprocess.Popen) -> None:
    fd = _lifelines.pop(proc.pid, None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def stop(proc: subprocess.Popen, *, grace: float = 10.0) -> int | None:
    """SIGTERM the whole process group (helpers the command started included), then SIGKILL after
    ``grace`` seconds; also when the command itself has already exited."""
    try:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            deadline = time.monotonic() + wait
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait)
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _group_alive(proc.pid):
                break
        return proc.poll()
    finally:
        _let_go(proc)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def copy_lines(proc: subprocess.Popen, log: IO[str], tail: collections.deque[str], reporter: Reporter) -> None:
    """Lines end at ``\n`` or ``\r``: a tqdm bar redraws with ``\r`` and reaches the reporter as it
    moves, not in one burst when its line finally ends."""
    assert proc.stdout is not None
    pending = b""
    while chunk := proc.stdout.read1(65536):
        *complete, pending = re.split(rb"[\r\n]", pending + chunk)
        for raw in complete:
            _emit(raw, log, tail, reporter)
    _emit(pending, log, tail, reporter)


def _emit(raw: bytes, log: IO[str], tail: collections.deque[str], reporter: Reporter) -> None:
    line = raw.decode("utf-8", "replace")
    if line.strip():
        log.write(line + "\n")
        tail.append(line)
        reporter.log(line)


def pump_to_file(proc: subprocess.Popen, log_path: Path) -> threading.Thread:
    """Copy a child's output to ``log_path`` in the background (servers log forever)."""

    def pump() -> None:
        assert proc.stdout is not None
        with open(log_path, "ab") as log:
            for chunk in iter(proc.stdout.readline, b""):
                log.write(chunk)
                log.flush()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def tail_of(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def choose_port(requested: int | None, host: str = "127.0.0.1") -> int:
    """``requested`` if free (clear error if taken), else any free port."""
    if requested in (None, 0):
        return free_port(host)
    assert requested is not None
    if not 0 < requested < 65536:
        raise ConfigurationError(f"port {requested} is not a valid TCP port.", "use 1-65535, or 0 for any free port.")
    if not port_is_free(requested, host):
        raise ConfigurationError(
            f"port {requested} on {host} is already in use by another process.",
            f"stop whatever listens there (e.g. `ss -ltnp 'sport = :{requested}'`), or pass port=0 / "
            "omit it to let sagetwin choose a free port.",
        )
    return requested


def wait_for_port_file(path: Path, *, timeout: float, alive: Callable[[], bool] = lambda: True,
                       interval: float = 0.02) -> int | None:
    """The port a server wrote to ``path`` once it was listening; None if it died or timed out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int(path.read_text())
        except (FileNotFoundError, ValueError):
            pass
        if not alive():
            return None
        time.sleep(interval)
    return None


def wait_until_healthy(host: str, port: int, *, timeout: float, path: str = "/ping",
                       alive: Callable[[], bool] = lambda: True, interval: float = 0.1) -> bool:
    """Poll ``GET path`` until 200 (True), the process dies or the time runs out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False
        conn = http.client.HTTPConnection(host, port, timeout=2)
        try:
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return True
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(interval)
    return False
