"""``CreateTrainingJob`` carried out for real: moto keeps the record, a backend runs the job.

The request is read as the SageMaker training toolkit reads it (image → stack, S3 channels →
files, ``sagemaker_program`` / ``sagemaker_submit_directory`` → code, JSON-encoded
hyperparameters), and the job's progress is reported as the service reports it: status and
secondary status, failure reason, metrics from ``MetricDefinitions``, artifacts in S3.
"""

from __future__ import annotations

import json
import re
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagetwin.aws.images import UnsupportedImage, stack_of
from sagetwin.aws.logs import TRAINING_LOG_GROUP, LogShipper
from sagetwin.aws.s3 import MissingData, download_object, download_prefix, upload_file
from sagetwin.aws.wsgi import Call, Reply, json_reply, service_error
from sagetwin.core.paths import inside
from sagetwin.emulation.artifacts import local_path
from sagetwin.emulation.contract import decode_hyperparameters
from sagetwin.emulation.processes import spawn, stop


class JobFailed(Exception):
    """Ends a job as Failed with this message as its FailureReason."""


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
    stop_requested: bool = False

    def move_to(self, secondary: str, message: str) -> None:
        now = time.time()
        if self.transitions:
            self.transitions[-1]["EndTime"] = now
        self.secondary = secondary
        self.transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})

    def finish(self, status: str, message: str, reason: str | None = None) -> None:
        self.move_to(status, message)
        self.transitions[-1]["EndTime"] = time.time()
        self.status, self.failure_reason, self.ended = status, reason, time.time()

    def overlay(self) -> dict[str, Any]:
        """What DescribeTrainingJob reports beyond moto's static record."""
        fields: dict[str, Any] = {
            "TrainingJobStatus": self.status, "SecondaryStatus": self.secondary,
            "SecondaryStatusTransitions": self.transitions, "TrainingStartTime": self.started,
            "LastModifiedTime": self.ended or time.time(),
            "FinalMetricDataList": [{"MetricName": k, **v} for k, v in self.metrics.items()],
        }
        if self.ended is not None:
            seconds = max(1, round(self.ended - self.started))
            fields.update(TrainingEndTime=self.ended, TrainingTimeInSeconds=seconds, BillableTimeInSeconds=seconds)
        if self.failure_reason:
            fields["FailureReason"] = self.failure_reason
        return fields


class TrainingJobs:
    """The twin's training jobs: created, described, listed and stopped through the API."""

    def __init__(self, clients: Any, work_dir: Path, backend: str, backend_options: dict[str, Any]) -> None:
        self.clients, self.work_dir = clients, work_dir
        self.backend, self.backend_options = backend, backend_options
        self.jobs: dict[str, TrainingJob] = {}

    def operations(self) -> dict[str, Any]:
        return {"CreateTrainingJob": self.create, "DescribeTrainingJob": self.describe,
                "StopTrainingJob": self.stop, "ListTrainingJobs": self.list}

    def create(self, call: Call) -> Reply:
        params = call.params()
        role = params.get("RoleArn", "")
        if not self.clients.role_exists(role):
            return service_error("ValidationException", f"Could not assume role {role}. Please ensure that the "
                                 "role exists and allows principal 'sagemaker.amazonaws.com' to assume the role.")
        reply = call.pass_to_moto()
        if reply.ok:
            job = self.jobs[params["TrainingJobName"]] = TrainingJob(params["TrainingJobName"], params)
            job.move_to("Starting", "Preparing the instances for training")
            threading.Thread(target=self._run, args=(job,), name=f"job {job.name}", daemon=True).start()
        return reply

    def describe(self, call: Call) -> Reply:
        reply = call.pass_to_moto()
        job = self.jobs.get(call.params().get("TrainingJobName", ""))
        if not reply.ok or job is None:
            return reply
        return json_reply({**reply.json(), **job.overlay()})

    def list(self, call: Call) -> Reply:
        reply = call.pass_to_moto()
        if not reply.ok:
            return reply
        payload = reply.json()
        for summary in payload.get("TrainingJobSummaries", []):
            job = self.jobs.get(summary.get("TrainingJobName", ""))
            if job is not None:
                summary.update(TrainingJobStatus=job.status, SecondaryStatus=job.secondary)
        return json_reply(payload)

    def stop(self, call: Call) -> Reply:
        name = call.params().get("TrainingJobName", "")
        job = self.jobs.get(name)
        if job is None:
            return service_error("ValidationException", f"Requested resource not found: training job {name}.")
        if job.status == "InProgress":
            job.stop_requested = True
            job.status = "Stopping"
            if job.proc is not None:
                stop(job.proc, grace=5.0)
        return json_reply({})

    def stop_all(self) -> None:
        for job in self.jobs.values():
            job.stop_requested = True
            if job.proc is not None:
                stop(job.proc, grace=5.0)

    def _run(self, job: TrainingJob) -> None:
        folder = inside(self.work_dir, job.name)
        shipper = LogShipper(self.clients.logs, TRAINING_LOG_GROUP, f"{job.name}/algo-1-{int(job.started)}").start()
        try:
            order = self._prepare(job, folder)
            job.move_to("Training", "Training image download completed. Training in progress.")
            outcome = self._execute(job, order, folder, shipper)
            if job.stop_requested:
                job.finish("Stopped", "Training job stopped")
                return
            if not outcome["ok"]:
                raise JobFailed(failure_reason(outcome, order))
            job.move_to("Uploading", "Uploading generated training model")
            output = f"{job.request['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job.name}/output"
            upload_file(self.clients.s3, local_path(outcome["model_data"], "model_data"), f"{output}/model.tar.gz")
            if outcome.get("output_data"):
                upload_file(self.clients.s3, local_path(outcome["output_data"], "output_data"),
                            f"{output}/output.tar.gz")
            job.finish("Completed", "Training job completed")
        except JobFailed as exc:
            job.finish("Failed", "Training job failed", str(exc))
        except Exception as exc:  # the twin's own trouble still ends the job, with the reason
            job.finish("Failed", "Training job failed", f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            shipper.close()

    def _prepare(self, job: TrainingJob, folder: Path) -> dict[str, Any]:
        job.move_to("Downloading", "Downloading input data")
        request = job.request
        try:
            stack = stack_of(request["AlgorithmSpecification"].get("TrainingImage", ""), "training")
        except UnsupportedImage as exc:
            raise JobFailed(f"ClientError: {exc}") from None
        hyperparameters = decode_hyperparameters(request.get("HyperParameters") or {})
        program = str(hyperparameters.pop("sagemaker_program", "") or "")
        submitted = str(hyperparameters.pop("sagemaker_submit_directory", "") or "")
        code = self._fetch_code(submitted, folder / "code")
        if not program or not (code / program).is_file():
            raise JobFailed(f"AlgorithmError: entry point {program!r} was not found in {submitted or 'the job'}.")
        resources = request.get("ResourceConfig", {})
        spec = {
            "job_name": job.name, "entry_point": program, "source_dir": str(code),
            "hyperparameters": hyperparameters, "inputs": self._fetch_channels(request, folder / "data"),
            "instance_type": resources.get("InstanceType"), "instance_count": resources.get("InstanceCount", 1),
            "environment": request.get("Environment") or {}, "output_path": str(folder / "run"),
            "transformers_version": stack.transformers, "pytorch_version": stack.pytorch, "py_version": stack.py,
            "max_run": request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 24 * 3600),
            "role": request.get("RoleArn"),
        }
        return {"spec": spec, "backend": self.backend, "backend_options": self.backend_options,
                "result": str(folder / "result.json")}

    def _fetch_code(self, uri: str, target: Path) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        if not uri.startswith("s3://"):
            return target
        archive = download_object(self.clients.s3, uri, target.parent / "sourcedir.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        return target

    def _fetch_channels(self, request: dict[str, Any], target: Path) -> dict[str, str]:
        inputs: dict[str, str] = {}
        for channel in request.get("InputDataConfig") or []:
            name = channel["ChannelName"]
            uri = channel.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri", "")
            try:
                download_prefix(self.clients.s3, uri, inside(target, name))
            except MissingData:
                raise JobFailed(
                    f'ClientError: Data download failed:No S3 objects found under S3 URL "{uri}" given in input '
                    f"data source. Please ensure that the bucket exists in the selected region "
                    f"({self.clients.region}), that objects exist under that S3 prefix, and that the role "
                    f'"{request.get("RoleArn")}" has "s3:ListBucket" permissions on bucket "{uri[5:].split("/")[0]}".'
                ) from None
            inputs[name] = str(inside(target, name))
        return inputs

    def _execute(self, job: TrainingJob, order: dict[str, Any], folder: Path, shipper: LogShipper) -> dict[str, Any]:
        order_path = folder / "order.json"
        order_path.write_text(json.dumps(order))
        patterns = [(d["Name"], re.compile(d["Regex"])) for d in job.request["AlgorithmSpecification"].get(
            "MetricDefinitions") or []]
        job.proc = spawn([sys.executable, "-m", "sagetwin.aws.job_runner", str(order_path)], cwd=folder)
        for raw in job.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            shipper.write(line)
            record_metrics(job, patterns, line)
        job.proc.wait()
        stop(job.proc, grace=1.0)
        result = Path(order["result"])
        if not result.is_file():
            return {"ok": False, "error": "the job's process ended without a result", "exit_code": job.proc.returncode,
                    "log_tail": ""}
        return json.loads(result.read_text())


def record_metrics(job: TrainingJob, patterns: list[tuple[str, re.Pattern[str]]], line: str) -> None:
    """``MetricDefinitions`` as the service applies them: the first group of each match, last one wins."""
    for name, pattern in patterns:
        match = pattern.search(line)
        if match:
            try:
                value = float(match.group(1) if match.groups() else match.group(0))
            except ValueError:
                continue
            job.metrics[name] = {"Value": value, "Timestamp": time.time()}


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
