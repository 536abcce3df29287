"""Child processes and local ports: start, stream, wait for, and always clean up."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sagetwin.core.errors import ConfigurationError
from sagetwin.core.progress import Reporter

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, so no server outlives its owner."""
    os.setsid()
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
          stdout: int | object = subprocess.PIPE) -> subprocess.Popen:
    """Start ``cmd`` in its own process group, tied to this process's lifetime."""
    return subprocess.Popen(
        list(cmd), env=env, cwd=cwd, stdout=stdout, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent if os.name == "posix" else None,
    )


def stop(proc: subprocess.Popen, *, grace: float = 10.0) -> int | None:
    """SIGTERM the whole process group, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return proc.returncode
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def run_streaming(cmd: Sequence[str], *, env: dict[str, str], cwd: Path, reporter: Reporter,
                  log_path: Path, tail_lines: int = 30) -> tuple[int, str]:
    """Run to completion, echoing output to ``reporter`` and ``log_path``; return (exit code, tail).

    Ctrl-C (or any error here) stops the child's whole process group before re-raising.
    """
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    proc = spawn(cmd, env=env, cwd=cwd)
    try:
        with open(log_path, "w", encoding="utf-8", errors="replace") as log:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                for line in raw.decode("utf-8", "replace").replace("\r", "\n").splitlines():
                    if not line.strip():
                        continue
                    log.write(line + "\n")
                    tail.append(line)
                    reporter.log(line)
        return proc.wait(), "\n".join(tail)
    finally:
        stop(proc)


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
