"""``CreateTrainingJob`` carried out for real: moto keeps the record, a backend runs the job.

The request is read as the SageMaker training toolkit reads it (image → stack, S3 channels →
files, ``sagemaker_program`` / ``sagemaker_submit_directory`` → code, JSON-encoded
hyperparameters), and the job's progress is reported as the service reports it: status and
secondary status, failure reason, metrics from ``MetricDefinitions``, artifacts in S3.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sagetwin.aws.checkpoints import DEFAULT_LOCAL_PATH, CheckpointSync
from sagetwin.aws.distribution import distribution_of, distribution_refused
from sagetwin.aws.images import UnsupportedImage, stack_of
from sagetwin.aws.job_inputs import check_program, fetch_channels, fetch_code
from sagetwin.aws.job_state import JobFailed, TrainingJob, failure_reason, limits_refused, record_metrics
from sagetwin.aws.logs import METRICS_NAMESPACE, TRAINING_LOG_GROUP, HostLogs
from sagetwin.aws.s3 import upload_file
from sagetwin.aws.spot import InterruptWhen, Rehearsal
from sagetwin.aws.wsgi import Call, Reply, create_once, describe_live, json_reply, listing_with_status, service_error
from sagetwin.core.paths import inside
from sagetwin.emulation.artifacts import local_path
from sagetwin.emulation.contract import decode_hyperparameters
from sagetwin.emulation.processes import spawn, stop

SHUTDOWN_GRACE_S = 5.0  # the twin itself stopping: its jobs get SIGTERM, then SIGKILL after this


class TrainingJobs:
    """The twin's training jobs: created, described, listed and stopped through the API."""

    def __init__(self, clients: Any, work_dir: Path, backend: str, backend_options: dict[str, Any],
                 environment: Any = None, interrupt_spot: InterruptWhen | None = None) -> None:
        self.clients, self.work_dir = clients, work_dir
        self.environment = environment or (lambda: dict(os.environ))  # a job's own AWS calls reach the twin
        self.backend, self.backend_options = backend, backend_options
        self.interrupt_spot = interrupt_spot  # each spot job interrupted once at this point (a rehearsal)
        self.jobs: dict[str, TrainingJob] = {}
        self.changed: Callable[[], None] = lambda: None  # a job ended: SDK clients waiting on the twin poll now
        self._creating = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._runner_lock = threading.Lock()
        self._spare: subprocess.Popen | None = None
        self._spare_env: dict[str, str] = {}
        self._closed = False

    def prepare_runner(self) -> None:
        """Start a job runner ahead of the next job (its imports take ~0.4 s on a small machine);
        called when the twin is up and after each job."""
        with self._runner_lock:
            if self._closed or (self._spare is not None and self._spare.poll() is None):
                return
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self._spare_env = self.environment()
            self._spare = spawn([sys.executable, "-m", "sagetwin.aws.job_runner", "--next"], cwd=self.work_dir,
                                env=self._spare_env, stdin=subprocess.PIPE)

    def _runner_for(self, order_path: Path) -> subprocess.Popen:
        """The ready runner handed ``order_path``, or a new one when none is ready or the
        environment changed since it started (a job runs with the environment of its start)."""
        environment = self.environment()
        with self._runner_lock:
            spare, self._spare = self._spare, None
        if spare is not None and spare.poll() is None and spare.stdin is not None \
                and self._spare_env == environment:
            try:
                spare.stdin.write(f"{order_path}\n".encode())
                spare.stdin.close()
                return spare
            except OSError:
                stop(spare, grace=1.0)
        elif spare is not None:
            stop(spare, grace=1.0)
        return spawn([sys.executable, "-m", "sagetwin.aws.job_runner", str(order_path)], cwd=order_path.parent,
                     env=environment)

    def _close_runner(self) -> None:
        with self._runner_lock:
            self._closed, spare, self._spare = True, self._spare, None
        if spare is not None:
            stop(spare, grace=1.0)

    def operations(self) -> dict[str, Any]:
        return {"CreateTrainingJob": self.create, "DescribeTrainingJob": self.describe,
                "StopTrainingJob": self.stop, "ListTrainingJobs": self.list}

    def create(self, call: Call) -> Reply:
        params = call.params()
        reply, job = create_once(call, params.get("TrainingJobName", ""), "trainingJobName", self.jobs, self._creating,
                                 self._taken, lambda name: TrainingJob(name, params),
                                 precheck=lambda: self._role_refused(params.get("RoleArn")) or limits_refused(params)
                                 or distribution_refused(params))
        if job is not None:
            job.move_to("Starting", "Preparing the instances for training")
            self._threads.append(threading.Thread(target=self._run, args=(job,), name=f"job {job.name}",
                                                  daemon=True))
            self._threads[-1].start()
        return reply

    def _taken(self, name: str) -> Reply:
        return service_error("ResourceInUse", "Training job names must be unique within an AWS account and region, "
                             "and a training job with this name already exists "
                             f"(arn:aws:sagemaker:{self.clients.region}:{self.clients.account}:training-job/"
                             f"{name.lower()})")

    def _role_refused(self, role: str | None) -> Reply | None:
        if self.clients.role_exists(role or ""):
            return None
        return service_error("ValidationException", f"Could not assume role {role}. Please ensure that the role "
                             "exists and allows principal 'sagemaker.amazonaws.com' to assume the role.")

    def describe(self, call: Call) -> Reply:
        return describe_live(call, self.jobs.get(call.params().get("TrainingJobName", "")))

    def list(self, call: Call) -> Reply:
        def status(name: str) -> dict[str, Any] | None:
            job = self.jobs.get(name)
            return None if job is None else {"TrainingJobStatus": job.status, "SecondaryStatus": job.secondary}

        return listing_with_status(call, "TrainingJobSummaries", "TrainingJobName", status)

    def stop(self, call: Call) -> Reply:
        name = call.params().get("TrainingJobName", "")
        job = self.jobs.get(name)
        if job is None:
            return service_error("ValidationException", f"Requested resource not found: training job {name}.")
        if not job.request_stop():
            return service_error("ValidationException", f"The request was rejected because the training job is in "
                                 f"status {job.status}.")
        return json_reply({})

    def stop_all(self, wait_s: float = 60.0) -> None:
        """Stop every job and wait for their threads (a job still downloading stops before it runs)."""
        for job in list(self.jobs.values()):
            job.request_stop(grace=SHUTDOWN_GRACE_S)
        self._close_runner()
        deadline = time.monotonic() + wait_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _run(self, job: TrainingJob) -> None:
        """The job from download to its final status; the status is set only once every log line
        is in CloudWatch, as the SDK reads the log one last time when it sees the status."""
        shipper: HostLogs | None = None
        ending = ("Failed", "Training job failed", "InternalServerError: the job ended unexpectedly")
        try:
            folder = inside(self.work_dir, job.name)
            shipper = HostLogs(self.clients.logs, TRAINING_LOG_GROUP, job.name, job.started)
            ending = self._carry_out(job, folder, shipper)
        except JobFailed as exc:
            ending = ("Failed", "Training job failed", str(exc))
        except Exception as exc:  # the twin's own trouble still ends the job, with the reason
            ending = ("Failed", "Training job failed", f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            if shipper is not None:
                shipper.close()
            job.finish(*ending)
            self.changed()
            self.prepare_runner()

    def _carry_out(self, job: TrainingJob, folder: Path, shipper: HostLogs) -> tuple[str, str, str | None]:
        stopped = ("Stopped", "Training job stopped", None)
        rehearsal = Rehearsal(self.interrupt_spot, job.interrupt) \
            if self.interrupt_spot is not None and job.request.get("EnableManagedSpotTraining") else None
        while True:
            order = self._prepare(job, folder)
            if job.stop_requested:
                return stopped
            sync = self._restore_checkpoints(job, order, folder, shipper)
            job.move_to("Training", "Training image download completed. Training in progress.")
            job.watch_limits()
            try:
                outcome = self._execute(job, order, folder, shipper, rehearsal)
            finally:
                if rehearsal is not None:
                    rehearsal.disarm()
                if sync is not None:
                    sync.close()
            if job.stop_requested:
                return stopped
            if rehearsal is None or not rehearsal.fired or rehearsal.resumed:
                break
            self.prepare_runner()  # the restart's runner starts while the job waits for capacity
            rehearsal.relaunch(job, folder, shipper.write)
            if job.stop_requested:
                return stopped
        if not outcome["ok"]:
            raise JobFailed(failure_reason(outcome, order))
        job.move_to("Uploading", "Uploading generated training model")
        output = f"{job.request['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job.name}/output"
        upload_file(self.clients.s3, local_path(outcome["model_data"], "model_data"), f"{output}/model.tar.gz")
        if outcome.get("output_data"):
            upload_file(self.clients.s3, local_path(outcome["output_data"], "output_data"), f"{output}/output.tar.gz")
        return ("Completed", "Training job completed", None)

    def _prepare(self, job: TrainingJob, folder: Path) -> dict[str, Any]:
        job.move_to("Downloading", "Downloading input data")
        request = job.request
        try:
            stack = stack_of(request["AlgorithmSpecification"].get("TrainingImage", ""), "training")
        except UnsupportedImage as exc:
            raise JobFailed(f"ClientError: {exc}") from None
        hyperparameters = decode_hyperparameters(request.get("HyperParameters") or {})
        algorithm = request["AlgorithmSpecification"]
        entrypoint = list(algorithm.get("ContainerEntrypoint") or [])
        program = str(hyperparameters.pop("sagemaker_program", "") or "")
        submitted = str(hyperparameters.pop("sagemaker_submit_directory", "") or "")
        code = fetch_code(self.clients.s3, submitted, folder / "code")
        if not entrypoint:  # the toolkit's entry point: the program must be in the code it was sent
            check_program(code, program, submitted)
        resources = request.get("ResourceConfig", {})
        distribution = distribution_of(hyperparameters)
        inputs = fetch_channels(self.clients.s3, self.clients.region, request, folder / "data")
        spec = {
            "job_name": job.name, "entry_point": program, "source_dir": str(code),
            "hyperparameters": hyperparameters, "inputs": inputs,
            "instance_type": resources.get("InstanceType"), "instance_count": resources.get("InstanceCount", 1),
            "environment": {**(request.get("Environment") or {}), "TRAINING_JOB_ARN":  # the platform's, as in AWS
                            f"arn:aws:sagemaker:{self.clients.region}:{self.clients.account}:training-job/"
                            f"{job.name.lower()}"}, "output_path": str(folder / "run"),
            "transformers_version": stack.transformers, "pytorch_version": stack.pytorch, "py_version": stack.py,
            "max_run": request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 24 * 3600),
            "role": request.get("RoleArn"), "distribution": distribution, "distribution_checked": True,
            "container_entrypoint": entrypoint, "container_arguments": list(algorithm.get("ContainerArguments") or []),
        }
        return {"spec": spec, "backend": self.backend, "backend_options": self.backend_options,
                "result": str(folder / "result.json")}

    def _restore_checkpoints(self, job: TrainingJob, order: dict[str, Any], folder: Path, shipper: HostLogs
                             ) -> CheckpointSync | None:
        """CheckpointConfig: S3Uri into the job's checkpoint folder, synced back while it runs."""
        config = job.request.get("CheckpointConfig") or {}
        if not config.get("S3Uri"):
            return None
        sync = CheckpointSync(self.clients.s3, config["S3Uri"], folder / "checkpoints")
        restored = sync.restore()
        if restored:
            shipper.write(f"sagetwin: {restored} checkpoint file(s) from {config['S3Uri']} restored into "
                          f"{config.get('LocalPath') or DEFAULT_LOCAL_PATH}")
        order["spec"].update(checkpoint_dir=str(sync.folder),
                             checkpoint_local_path=config.get("LocalPath") or DEFAULT_LOCAL_PATH)
        return sync.start()

    def _put_metrics(self, job_name: str, points: list[tuple[str, float, float]]) -> None:
        """Each match into CloudWatch metrics, where ``TrainingJobAnalytics`` reads them: the
        service's namespace and dimension, the log line's time, one point per match."""
        try:
            self.clients.cloudwatch.put_metric_data(Namespace=METRICS_NAMESPACE, MetricData=[
                {"MetricName": name, "Value": value, "Timestamp": at,
                 "Dimensions": [{"Name": "TrainingJobName", "Value": job_name}]} for name, value, at in points])
        except Exception as exc:  # a metric lost is said in the job's log, not a job failed
            print(f"sagetwin: could not put metrics of {job_name} into CloudWatch: {exc}", file=sys.stderr)

    def _execute(self, job: TrainingJob, order: dict[str, Any], folder: Path, shipper: HostLogs,
                 rehearsal: Rehearsal | None) -> dict[str, Any]:
        order_path = folder / "order.json"
        order_path.write_text(json.dumps(order))
        patterns = [(d["Name"], re.compile(d["Regex"])) for d in job.request["AlgorithmSpecification"].get(
            "MetricDefinitions") or []]
        with job.lock:
            if job.stop_requested:  # stopped while its data was downloading
                return {"ok": False, "error": "stopped", "exit_code": None, "log_tail": ""}
            job.proc = proc = self._runner_for(order_path)
        if rehearsal is not None:
            rehearsal.arm()
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            line = shipper.write(line)
            if rehearsal is not None:
                rehearsal.observe(line)
            points = record_metrics(job, patterns, line)
            if points:
                self._put_metrics(job.name, points)
        proc.wait()
        stop(proc, grace=1.0)
        with job.lock:  # ended: a later stop or interruption must not signal its (reusable) group id
            job.proc = None
        result = Path(order["result"])
        if not result.is_file():
            return {"ok": False, "error": "the job's process ended without a result", "exit_code": proc.returncode,
                    "log_tail": ""}
        return json.loads(result.read_text())
