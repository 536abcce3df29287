"""Whether what a process left is still in use: a folder marked while a run works in it, and a
process named so that a reused pid is not taken for it. Both rest on the kernel, never on clocks or
quiet logs, so neither goes stale when a run pauses (a breakpoint) or its process is killed."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

RUN_MARKER = ".sagetwin-running"


@contextlib.contextmanager
def running_in(folder: Path) -> Iterator[None]:
    """Mark ``folder`` as in use while the block runs: an exclusive ``flock`` on its marker file,
    which the kernel releases when this process ends however it ends (SIGKILL included). The marker
    is locked under a name of its own and then renamed into place: whoever sees it finds it held."""
    pending = folder / f"{RUN_MARKER}.{os.getpid()}"
    descriptor = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with contextlib.suppress(OSError):  # no locks on this file system: unmarked, judged as before marks
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh file: nobody else holds it
            os.replace(pending, folder / RUN_MARKER)
        yield
    finally:
        os.close(descriptor)  # the marker stays, unlocked: the folder is known to be idle from now on
        pending.unlink(missing_ok=True)  # only there if the rename failed


def in_use(folder: Path) -> bool | None:
    """True while a process holds ``folder``'s marker, False once none does, None for a folder
    without a marker (made by a version without them): the caller judges those as it did before."""
    try:
        descriptor = os.open(folder / RUN_MARKER, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return True  # unreadable: never take it for idle
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None  # a file system without locks: nothing known
    finally:
        os.close(descriptor)
    return False


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), "" where it cannot be read."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_identity(pid: int) -> dict[str, str | int]:
    """What names one process for ever: its host, its pid, and when it started."""
    return {"host": socket.gethostname(), "pid": pid, "started": start_time(pid)}


def process_gone(identity: dict[str, object]) -> bool:
    """True only for a process of this host that no longer runs: its pid is free, or taken by a
    process that started at another time. Another host's process cannot be judged from here."""
    pid = identity.get("pid")
    if identity.get("host", socket.gethostname()) != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # someone else's process now has the pid: the start time tells
    started = identity.get("started")
    return bool(started) and start_time(pid) not in ("", started)
