"""``CreateTransformJob`` carried out: the job's model served on the backend (as an endpoint's
is), its input read from the twin's S3 object by object, cut into requests and sent
(``transform_records``), and each object's answers written to ``<S3OutputPath>/<key>.out``.
A record the model rejects fails the job as the service fails it, with the model's message in
the job's CloudWatch log (``/aws/sagemaker/TransformJobs``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagetwin.aws.endpoints import ShipperReporter
from sagetwin.aws.hosted_models import HostingFailed, hosting_spec
from sagetwin.aws.logs import LogShipper
from sagetwin.aws.transform_records import RecordError, filters_problem
from sagetwin.aws.transform_run import MODEL_REJECTED, Stopped, TransformRun
from sagetwin.aws.wsgi import Call, Reply, create_once, describe_live, json_reply, listing_with_status, service_error
from sagetwin.core.errors import SagetwinError
from sagetwin.core.paths import inside
from sagetwin.core.selection import create_backend

LOG_GROUP = "/aws/sagemaker/TransformJobs"
DEFAULT_TIMEOUT_S = 600.0  # ModelClientConfig.InvocationsTimeoutInSeconds when not set
MAX_PAYLOAD_MB = 100


@dataclass
class TransformJob:
    name: str
    request: dict[str, Any]
    status: str = "InProgress"
    failure_reason: str | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    stop_requested: bool = False
    recorded: dict[str, Any] | None = None
    served: Any = None  # the job's model server while it runs
    lock: threading.Lock = field(default_factory=threading.Lock)

    def overlay(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"TransformJobStatus": self.status, "TransformStartTime": self.started}
        if self.ended is not None:
            shown["TransformEndTime"] = self.ended
        if self.failure_reason:
            shown["FailureReason"] = self.failure_reason
        return shown


class TransformJobs:
    def __init__(self, clients: Any, work_dir: Path, backend: str, backend_options: dict[str, Any]) -> None:
        self.clients, self.work_dir = clients, work_dir
        self.backend, self.backend_options = backend, backend_options
        self.jobs: dict[str, TransformJob] = {}
        self.changed: Callable[[], None] = lambda: None  # a job ended (see aws.changes)
        self._creating = threading.Lock()
        self._threads: list[threading.Thread] = []

    def operations(self) -> dict[str, Any]:
        return {"CreateTransformJob": self.create, "DescribeTransformJob": self.describe,
                "StopTransformJob": self.stop, "ListTransformJobs": self.list}

    def create(self, call: Call) -> Reply:
        params = call.params()
        reply, job = create_once(call, params.get("TransformJobName", ""), "transformJobName", self.jobs,
                                 self._creating, self._taken, lambda name: TransformJob(name, params),
                                 precheck=lambda: self._refused(params))
        if job is not None:
            thread = threading.Thread(target=self._run, args=(job,), name=f"transform {job.name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return reply

    def _taken(self, name: str) -> Reply:
        return service_error("ResourceInUse", f"Job name must be unique within an AWS account and region, and a job "
                             f"with this name already exists (arn:aws:sagemaker:{self.clients.region}:"
                             f"{self.clients.account}:transform-job/{name.lower()})")

    def _refused(self, params: dict[str, Any]) -> Reply | None:
        source = params.get("TransformInput", {})
        data_type = source.get("DataSource", {}).get("S3DataSource", {}).get("S3DataType", "S3Prefix")
        problem = filters_problem(params.get("DataProcessing") or {}, source.get("ContentType", ""),
                                  source.get("SplitType", "None"))
        payload, concurrency = params.get("MaxPayloadInMB", 6), params.get("MaxConcurrentTransforms") or 1
        if payload == 0:
            problem = ("MaxPayloadInMB 0 (payloads of any size in HTTP chunked encoding) is not emulated offline: "
                       "set it from 1 to 100.")
        elif payload > MAX_PAYLOAD_MB or payload * concurrency > MAX_PAYLOAD_MB:
            problem = (f"MaxPayloadInMB ({payload}) and MaxConcurrentTransforms x MaxPayloadInMB ({concurrency} x "
                       f"{payload}) must not exceed {MAX_PAYLOAD_MB} MB.")
        elif data_type not in ("S3Prefix", "ManifestFile"):
            problem = f"S3DataType {data_type} is not emulated offline; use S3Prefix or ManifestFile."
        elif source.get("SplitType") in ("RecordIO", "TFRecord"):
            problem = (f"SplitType {source['SplitType']} is not emulated offline; use None or Line, or run this job "
                       "on SageMaker itself.")
        return None if problem is None else service_error("ValidationException", problem)

    def describe(self, call: Call) -> Reply:
        return describe_live(call, self.jobs.get(call.params().get("TransformJobName", "")))

    def list(self, call: Call) -> Reply:
        def status(name: str) -> dict[str, Any] | None:
            job = self.jobs.get(name)
            return None if job is None else {"TransformJobStatus": job.status}

        return listing_with_status(call, "TransformJobSummaries", "TransformJobName", status)

    def stop(self, call: Call) -> Reply:
        name = call.params().get("TransformJobName", "")
        job = self.jobs.get(name)
        if job is None:
            return service_error("ValidationException", f"Could not find job to update with name {name}")
        with job.lock:
            if job.status != "InProgress":
                return service_error("ValidationException", f"The request was rejected because the transform job is "
                                     f"in status {job.status}.")
            job.stop_requested, job.status = True, "Stopping"
        return json_reply({})

    def stop_all(self, wait_s: float = 60.0) -> None:
        for job in list(self.jobs.values()):
            job.stop_requested = True
        deadline = time.monotonic() + wait_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for job in list(self.jobs.values()):  # one still stuck in a call: its model server goes now
            self._release(job)

    @staticmethod
    def _release(job: TransformJob) -> None:
        with job.lock:
            served, job.served = job.served, None
        if served is not None:
            served.delete()

    def _run(self, job: TransformJob) -> None:
        ending = ("Failed", "InternalServerError: the job ended unexpectedly")
        shipper: LogShipper | None = None
        try:
            shipper = LogShipper(self.clients.logs, LOG_GROUP, f"{job.name}/i-{int(job.started)}").start()
            request = job.request
            resources = request.get("TransformResources", {})
            timeout = (request.get("ModelClientConfig") or {}).get("InvocationsTimeoutInSeconds", DEFAULT_TIMEOUT_S)
            spec = hosting_spec(self.clients, request["ModelName"], job.name, inside(self.work_dir, job.name),
                                instance_type=resources.get("InstanceType"), environment=request.get("Environment"),
                                invocation_timeout=float(timeout))
            served = create_backend(self.backend, **self.backend_options).deploy(spec, ShipperReporter(shipper))
            with job.lock:
                job.served = served
            ending = TransformRun(job, served, self.clients.s3, shipper).run()
        except Stopped:
            ending = ("Stopped", None)
        except HostingFailed as exc:
            ending = ("Failed", str(exc))
        except RecordError as exc:
            ending = ("Failed", str(exc) if str(exc).startswith("ClientError") else MODEL_REJECTED)
        except SagetwinError as exc:
            ending = ("Failed", exc.render())
        except Exception as exc:  # the twin's own trouble still ends the job, with the reason
            ending = ("Failed", f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            try:
                self._release(job)
            finally:
                if shipper is not None:
                    shipper.close()
                with job.lock:
                    job.failure_reason, job.ended = ending[1], time.time()
                    job.status = "Stopped" if job.stop_requested and ending[0] != "Completed" else ending[0]
                self.changed()
