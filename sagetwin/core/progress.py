"""Progress messages for long work, kept apart from results so `--json` stays clean."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO, runtime_checkable

from sagetwin.core.prompt import confirm


class Reporter(Protocol):
    """Where backends and the workflow say what they are doing."""

    def step(self, message: str) -> None:
        """A new stage started (data prep, training, endpoint start, ...)."""

    def log(self, line: str) -> None:
        """A line of output from the work itself (training log, server log)."""


@runtime_checkable
class Asks(Protocol):
    """A reporter that can put a yes/no question to a person; backends ask through it and
    never prompt themselves (a library caller's reporter answers with the default)."""

    def ask(self, question: str, *, default: bool) -> bool: ...


class StreamReporter:
    """Writes progress to a stream (stderr by default), with elapsed time per stage."""

    def __init__(self, stream: TextIO | None = None, *, show_logs: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.show_logs = show_logs
        self.started = time.monotonic()

    def step(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[sagetwin {elapsed:6.1f}s] {message}", file=self.stream, flush=True)

    def log(self, line: str) -> None:
        if self.show_logs:
            print(f"    | {line}", file=self.stream, flush=True)

    def ask(self, question: str, *, default: bool) -> bool:
        """On a terminal, the person answers; otherwise the default stands."""
        try:
            return confirm(question, default=default, without_terminal=default)
        except KeyboardInterrupt:
            return default


class SilentReporter:
    """Discards everything; for library use where the caller does not want output."""

    def step(self, message: str) -> None:
        pass

    def log(self, line: str) -> None:
        pass
