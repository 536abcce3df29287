"""A rehearsed spot interruption: the twin interrupts each managed spot job once, at a point the
person chooses, as SageMaker does when EC2 takes the instances back.

The script gets SIGTERM (SIGKILL only after SageMaker's grace period), the checkpoints written so
far are synced to ``CheckpointConfig.S3Uri``, the job's secondary status goes through
``Interrupted`` and ``Starting`` back to ``Downloading`` and ``Training`` on fresh instances
(an empty job folder, the checkpoints copied back in), and the wait for new capacity is not
billed. People use it to prove their ``resume_from_checkpoint`` logic before paying for a real
interruption.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagetwin.core.errors import ConfigurationError

INTERRUPTED = ("Interrupted", "The job stopped because the managed spot training instances were interrupted.")
RELAUNCHING = ("Starting", "Launching requested ML instances")
CAPACITY_WAIT_S = 2.0  # between the interruption and the new instances: time the job runs but is not billed


@dataclass(frozen=True)
class InterruptWhen:
    """The point in a spot job's training at which the rehearsal interrupts it."""

    seconds: float | None = None
    lines: int | None = None
    pattern: str | None = None

    @classmethod
    def parse(cls, text: str) -> InterruptWhen:
        """``30s`` (seconds of training), ``40lines`` (lines of its log since training began) or
        ``/REGEX/`` (the first log line it matches, e.g. ``/saving checkpoint/``)."""
        text = text.strip()
        if match := re.fullmatch(r"(\d+(?:\.\d+)?)\s*s", text):
            return cls(seconds=float(match[1]))
        if match := re.fullmatch(r"(\d+)\s*lines?", text):
            return cls(lines=int(match[1]))
        if len(text) > 2 and text.startswith("/") and text.endswith("/"):
            try:
                re.compile(text[1:-1])
            except re.error as exc:
                raise ConfigurationError(f"--interrupt-spot {text!r}: the pattern is not a regular expression "
                                         f"({exc}).", "check the pattern between the slashes.") from None
            return cls(pattern=text[1:-1])
        raise ConfigurationError(
            f"--interrupt-spot {text!r} is not a point in a training job.",
            "write 30s (seconds of training), 40lines (lines of the job's log) or /REGEX/ (the first log line that "
            "matches), e.g. --interrupt-spot '/saved checkpoint/'.")

    def __str__(self) -> str:
        if self.seconds is not None:
            return f"after {self.seconds:g} s of training"
        if self.lines is not None:
            return f"after {self.lines} lines of its log"
        return f"at the first log line matching /{self.pattern}/"


class Rehearsal:
    """One spot job's rehearsed interruption: armed when its first run starts training, fired at
    most once; ``interrupt`` stops the run as SageMaker stops it."""

    def __init__(self, when: InterruptWhen, interrupt: Callable[[], bool]) -> None:
        self.when, self._interrupt = when, interrupt
        self._pattern = re.compile(when.pattern) if when.pattern is not None else None
        self._lines = 0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self.fired = self.resumed = False

    def arm(self) -> None:
        if self.when.seconds is not None and not self.fired:
            self._timer = threading.Timer(self.when.seconds, self.fire)
            self._timer.daemon = True
            self._timer.start()

    def observe(self, line: str) -> None:
        if self.fired or self.resumed:
            return
        self._lines += 1
        if (self.when.lines is not None and self._lines >= self.when.lines) or \
                (self._pattern is not None and self._pattern.search(line)):
            self.fire()

    def fire(self) -> None:
        """Interrupt the run, if one is going: a point reached after the run ended (a timer firing
        during the final checkpoint sync) interrupts nothing, and the job is not restarted."""
        with self._lock:
            if self.fired or self.resumed:
                return
            self.fired = self._interrupt()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def relaunch(self, job: Any, folder: Path, log: Callable[[str], None]) -> None:
        """After the interrupted run ended: ``Interrupted``, a wait for capacity (not billed), then
        ``Starting`` on new instances, whose disks hold nothing of the last run."""
        self.disarm()
        self.resumed = True
        log(f"sagetwin: spot interruption rehearsed ({self.when}); the job restarts on new instances and "
            "finds its checkpoints from S3")
        job.move_to(*INTERRUPTED)
        waited_from = time.time()
        while time.time() - waited_from < CAPACITY_WAIT_S and not job.stop_requested:
            time.sleep(0.1)
        job.unbilled_s += time.time() - waited_from
        if job.stop_requested:  # stopped while it waited: it ends from here, nothing is fetched again
            return
        job.move_to(*RELAUNCHING)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
