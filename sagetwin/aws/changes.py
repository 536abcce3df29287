"""A file the twin grows by one byte whenever a job or an endpoint reaches a new status. The SDK
in a client process waits between its polls (``client_hook``); where it can see this file it
polls as soon as the file grows, so ``fit()``, ``deploy()`` and ``wait()`` return when the twin's
work ends instead of at their next tick. Growth, not a timestamp: no clock granularity to lose
a change in."""

from __future__ import annotations

import os
import threading
from pathlib import Path

VARIABLE = "SAGETWIN_AWS_CHANGES"  # where a client process finds the file


class Changes:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # a job's thread may signal while the twin closes
        self._fd: int | None = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW, 0o600)

    def signal(self) -> None:
        """A status changed: every client waiting on the file polls now (at worst, a poll later)."""
        with self._lock:
            if self._fd is not None:
                try:
                    os.write(self._fd, b".")
                except OSError:  # a full disk delays clients by one poll; it never fails the job
                    pass

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        self.path.unlink(missing_ok=True)

