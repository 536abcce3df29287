"""Reading a training log as it streams: where the run is (step / total, it/s) and what it
measured (loss, eval metrics). The live progress display and the run records both read it.

Three shapes are understood, because scripts print progress in different ways:
the bundled train.py's ``step 10/126 (0.88 it/s) {"loss": 0.69}``, the Trainer's own
``{'loss': 0.6917, 'epoch': 0.08}`` dictionaries (any script using ``Trainer``), and tqdm bars
``10/126 [00:11<02:10, 1.13s/it]``.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sagetwin.core.progress import Asks

_STEP_LINE = re.compile(r"^step (\d+)/(\d+) \(([\d.]+) it/s\) (\{.*\})\s*$")
# the Trainer's own bars have no description ("Loading weights: 3/41" is not training progress)
_TQDM = re.compile(r"^\s*\d+%\|[^|]*\|\s*(\d+)/(\d+) \[[\d:]+<[\d:?]+,\s*([\d.]+)(it/s|s/it)")
_DICT_LINE = re.compile(r"^\s*(\{.*\})\s*$")


@dataclass(frozen=True)
class LogEvent:
    """What one log line said: a position in the run, metrics, or both."""

    step: int | None = None
    total: int | None = None
    rate: float | None = None  # steps per second
    metrics: dict[str, float] = field(default_factory=dict)
    from_bar: bool = False  # read from a tqdm bar (the script printed no step lines of its own)

    @property
    def is_eval(self) -> bool:
        return any(k.startswith("eval_") for k in self.metrics)


def _numbers(text: str) -> dict[str, float] | None:
    """A dict printed as JSON or as a Python repr, keeping its numeric values (the Trainer of
    transformers 5 prints them as strings: ``'0.6917'``)."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        try:
            data = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    if not isinstance(data, dict):
        return None
    numbers: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                continue
        if isinstance(value, (int, float)):
            numbers[str(key)] = float(value)
    return numbers or None


def parse_line(line: str) -> LogEvent | None:
    """The event in one log line, or None for any other line."""
    if len(line) > 4000:  # a pasted blob, not a log record
        return None
    match = _STEP_LINE.match(line)
    if match:
        return LogEvent(int(match[1]), int(match[2]), float(match[3]), _numbers(match[4]) or {})
    match = _DICT_LINE.match(line)
    if match:
        metrics = _numbers(match[1])
        return LogEvent(metrics=metrics) if metrics and ("loss" in metrics or "epoch" in metrics
                                                         or any(k.startswith("eval_") for k in metrics)) else None
    match = _TQDM.match(line)
    if match:
        step, total, value, unit = match.groups()
        rate = float(value) if unit == "it/s" else (1.0 / float(value) if float(value) else None)
        return LogEvent(int(step), int(total), rate, from_bar=True)
    return None


class LogHistory:
    """The metric records of a run in order, as the Trainer's ``state.log_history`` keeps them
    (one dict per logging or evaluation step), gathered from its streamed log."""

    def __init__(self) -> None:
        self.records: list[dict[str, float]] = []
        self._last_step = 0

    def add(self, event: LogEvent) -> None:
        if event.step is not None:
            self._last_step = event.step
        if event.metrics:
            record = dict(event.metrics)
            record.setdefault("step", float(self._last_step))
            if not self.records or self.records[-1] != record:  # a script may print the same record twice
                self.records.append(record)


class HistoryTap:
    """A reporter that passes everything on and keeps the run's :class:`LogHistory` on the way."""

    def __init__(self, inner: Any, history: LogHistory) -> None:
        self.inner = inner
        self.history = history

    def step(self, message: str) -> None:
        self.inner.step(message)

    def log(self, line: str) -> None:
        event = parse_line(line)
        if event is not None:
            self.history.add(event)
        self.inner.log(line)

    def ask(self, question: str, *, default: bool) -> bool:
        return self.inner.ask(question, default=default) if isinstance(self.inner, Asks) else default
