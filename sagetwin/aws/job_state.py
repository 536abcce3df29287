"""A twin training job's record, as DescribeTrainingJob reports it: status and secondary status
with their transitions, metrics from ``MetricDefinitions``, the failure reason in the training
toolkit's wording."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sagetwin.aws.replies import Reply, service_error
from sagetwin.emulation.processes import stop


class JobFailed(Exception):
    """Ends a job as Failed with this message as its FailureReason."""


# SageMaker's stop: SIGTERM to the training script, SIGKILL this long after (StopTrainingJob, the
# StoppingCondition, a spot interruption), time in which a script may save its work
STOP_GRACE_S = 120.0

# the secondary status and message a job stopped by its StoppingCondition ends with
LIMITS = {"MaxRuntimeExceeded": "Training job runtime exceeded MaxRuntimeInSeconds provided",
          "MaxWaitTimeExceeded": "Training job exceeded MaxWaitTimeInSeconds provided"}


def limits_refused(request: dict[str, Any]) -> Reply | None:
    """CreateTrainingJob's check of a spot job's StoppingCondition, in the service's words."""
    condition = request.get("StoppingCondition") or {}
    wait, run = condition.get("MaxWaitTimeInSeconds"), condition.get("MaxRuntimeInSeconds", 86400)
    if wait is not None and not request.get("EnableManagedSpotTraining"):
        return service_error("ValidationException", "Invalid MaxWaitTimeInSeconds. It is only supported when "
                             "EnableManagedSpotTraining is set to true")
    if request.get("EnableManagedSpotTraining") and (wait is None or wait < run):
        return service_error("ValidationException", "Invalid MaxWaitTimeInSeconds. It must be present and be greater "
                             f"than or equal to MaxRuntimeInSeconds ({run}).")
    return None


@dataclass
class TrainingJob:
    name: str
    request: dict[str, Any]
    status: str = "InProgress"
    secondary: str = "Starting"
    failure_reason: str | None = None
    transitions: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    ended: float | None = None
    proc: Any = None
    recorded: dict[str, Any] | None = None  # moto's DescribeTrainingJob answer: static, so asked for once
    stop_requested: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)  # between StopTrainingJob and the runner's start
    limit: str | None = None  # the StoppingCondition that stopped it (a key of LIMITS)
    unbilled_s: float = 0.0  # a spot job's waits for new capacity after an interruption
    _watching: bool = False

    def watch_limits(self) -> None:
        """From the start of training: stop the job (SIGTERM, then SIGKILL) when it passes
        MaxRuntimeInSeconds, or, for a spot job, MaxWaitTimeInSeconds counted from its creation."""
        if self._watching:  # once per job: a restarted spot job keeps its deadlines
            return
        self._watching = True
        condition = self.request.get("StoppingCondition") or {}
        deadlines = [(time.time() + condition["MaxRuntimeInSeconds"], "MaxRuntimeExceeded")] \
            if condition.get("MaxRuntimeInSeconds") else []
        if self.request.get("EnableManagedSpotTraining") and condition.get("MaxWaitTimeInSeconds"):
            deadlines.append((self.started + condition["MaxWaitTimeInSeconds"], "MaxWaitTimeExceeded"))
        if not deadlines:
            return

        def watch() -> None:
            at, which = min(deadlines)
            while self.ended is None and not self.stop_requested:
                if time.time() >= at:
                    self.limit = which
                    self.request_stop()
                    return
                time.sleep(0.2)

        threading.Thread(target=watch, name=f"limits {self.name}", daemon=True).start()

    def request_stop(self, grace: float = STOP_GRACE_S) -> bool:
        """Stop a job in progress (False: it had already ended). The call returns at once, as
        StopTrainingJob does: the script has ``grace`` seconds after its SIGTERM."""
        with self.lock:
            if self.status not in ("InProgress", "Stopping"):
                return False
            if not self.stop_requested and self.limit is None:
                self.move_to("Stopping", "Stopping the training job")
            self.status, self.stop_requested, proc = "Stopping", True, self.proc
        if proc is not None:
            _stop_in_background(proc, grace)
        return True

    def interrupt(self) -> bool:
        """A spot interruption: the run is stopped as SageMaker stops it, the job goes on. False
        when no run was going (it had ended, or the job is stopping): nothing was interrupted."""
        with self.lock:
            proc = self.proc if self.status == "InProgress" and not self.stop_requested else None
        if proc is None:
            return False
        _stop_in_background(proc, STOP_GRACE_S)
        return True

    def move_to(self, secondary: str, message: str) -> None:
        now = time.time()
        if self.transitions:
            self.transitions[-1]["EndTime"] = now
        self.secondary = secondary
        self.transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})

    def finish(self, status: str, message: str, reason: str | None = None) -> None:
        with self.lock:
            if self.limit is not None and status == "Stopped":
                self.move_to(self.limit, LIMITS[self.limit])
            else:
                self.move_to(status, message)
            self.transitions[-1]["EndTime"] = time.time()
            self.status, self.failure_reason, self.ended = status, reason, time.time()

    def overlay(self) -> dict[str, Any]:
        """What DescribeTrainingJob reports beyond moto's static record (copies: the job's thread
        keeps changing the originals)."""
        fields: dict[str, Any] = {
            "TrainingJobStatus": self.status, "SecondaryStatus": self.secondary,
            "SecondaryStatusTransitions": [dict(t) for t in list(self.transitions)],
            "TrainingStartTime": self.started, "LastModifiedTime": self.ended or time.time(),
            "FinalMetricDataList": [{"MetricName": k, **v} for k, v in dict(self.metrics).items()],
            # as sent (moto puts a canned MetricDefinitions in its place)
            "AlgorithmSpecification": dict(self.request.get("AlgorithmSpecification") or {}),
        }
        if self.ended is not None:
            seconds = self.ended - self.started
            fields.update(TrainingEndTime=self.ended, TrainingTimeInSeconds=max(1, round(seconds)),
                          BillableTimeInSeconds=max(1, round(seconds - self.unbilled_s)))
        else:  # moto's record has an end time from the start: a running job has none (None: left out)
            fields.update(TrainingEndTime=None, TrainingTimeInSeconds=None, BillableTimeInSeconds=None)
        if self.failure_reason:
            fields["FailureReason"] = self.failure_reason
        return fields


def _stop_in_background(proc: Any, grace: float) -> None:
    threading.Thread(target=stop, args=(proc,), kwargs={"grace": grace}, name="stopping a job", daemon=True).start()


def record_metrics(job: TrainingJob, patterns: list[tuple[str, re.Pattern[str]]], line: str
                   ) -> list[tuple[str, float, float]]:
    """``MetricDefinitions`` as the service applies them: the first group of each match; the last
    one is the job's final value. Returns each match as (name, value, the line's time), one
    CloudWatch point each."""
    matched = []
    for name, pattern in patterns:
        match = pattern.search(line)
        if match:
            try:
                value = float(match.group(1) if match.groups() else match.group(0))
            except ValueError:
                continue
            now = time.time()
            job.metrics[name] = {"Value": value, "Timestamp": now}
            matched.append((name, value, now))
    return matched


def failure_reason(outcome: dict[str, Any], order: dict[str, Any]) -> str:
    """The toolkit's ``ExecuteUserScriptError`` wording, with the script's own error line."""
    if outcome.get("exit_code") is None:
        return f"AlgorithmError: {outcome.get('error', 'the job failed')}"
    tail = [line for line in (outcome.get("log_tail") or "").splitlines() if line.strip()]
    errors = [line.strip() for line in tail if re.match(r"^[\w.]*(Error|Exception|Interrupt|Exit)\b.*", line.strip())]
    message = errors[-1] if errors else (tail[-1].strip() if tail else outcome.get("error", ""))
    spec = order["spec"]
    code = outcome["exit_code"]
    return (f"AlgorithmError: ExecuteUserScriptError:\nExitCode {code}\nErrorMessage \"{message}\"\n"
            f"Command \"python {spec['entry_point']}\", exit code: {code}")
