"""Training progress as one live bar on a terminal (rich): step / total, it/s, loss, the latest
eval metrics and the ETA, redrawn in place instead of a scroll of per-step lines. Other log
lines and stage messages still print once each, above the bar."""

from __future__ import annotations

import sys
from typing import TextIO

from sagetwin.core.progress import StreamReporter
from sagetwin.core.training_log import LogEvent, parse_line

DEBUGGER = "[sagetwin-debugger]"  # a job's breakpoint() started pdb on this terminal
SHOWN = ("loss", "eval_loss", "eval_accuracy", "eval_f1", "accuracy", "f1")


def _metrics_text(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {metrics[k]:.4g}" for k in SHOWN if k in metrics)


class LiveReporter(StreamReporter):
    """A :class:`StreamReporter` whose training progress lines become a live bar."""

    def __init__(self, stream: TextIO | None = None, *, show_logs: bool = True) -> None:
        from rich.console import Console

        super().__init__(stream, show_logs=show_logs)
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        self._progress = None
        self._task = None
        self._metrics: dict[str, float] = {}
        self._own_steps = False

    def step(self, message: str) -> None:
        self.finish()
        super().step(message)

    def log(self, line: str) -> None:
        if line.startswith(DEBUGGER):
            self.finish()  # pdb has the terminal: no bar redrawn over its prompt
        event = parse_line(line)
        if event is None:
            self._print(line)
            return
        self._metrics.update(event.metrics)
        if event.step is not None and event.total:
            if self._follows(event):
                self._advance(event)
            if event.from_bar or not event.is_eval:
                return  # the bar shows it
        elif self._progress is not None and "loss" in event.metrics and not event.is_eval:
            return  # a training-loss record: the bar shows the latest
        self._print(line)  # evaluation results, summaries, and records with no bar to show them: once

    def _follows(self, event: LogEvent) -> bool:
        """Step lines of the script's own win over tqdm bars; once a bar runs, another total (an
        evaluation's bar) is not training progress."""
        if not event.from_bar:
            self._own_steps = True
            return True
        if self._own_steps:
            return False
        return self._progress is None or self._progress.tasks[0].total == event.total

    def _advance(self, event: LogEvent) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        if self._progress is None:
            self._progress = Progress(
                TextColumn("training"), BarColumn(bar_width=24), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                TextColumn("{task.fields[metrics]}"),  # last: a narrow terminal shortens the metrics first
                console=self.console, transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("training", total=event.total, rate="", metrics="")
        rate = f"{event.rate:.2f} it/s" if event.rate else ""
        self._progress.update(self._task, completed=event.step, total=event.total, rate=rate,
                              metrics=_metrics_text(self._metrics))

    def _print(self, line: str) -> None:
        if self.show_logs:
            self.console.print(f"    | {line}", markup=False, highlight=False)

    def finish(self) -> None:
        """Leave the bar's last state on screen and go back to plain lines."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._metrics = {}


def reporter_for_terminal(*, show_logs: bool, live: bool = True) -> StreamReporter:
    """A live bar when stdout and stderr are a terminal (and ``live``), else plain lines: piped
    output, logs, CI, ``--json``."""
    if live and sys.stdout.isatty() and sys.stderr.isatty():
        return LiveReporter(show_logs=show_logs)
    return StreamReporter(show_logs=show_logs)
