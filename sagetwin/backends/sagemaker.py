"""The ``sagemaker`` backend: the same job on Amazon SageMaker through SDK v2's Hugging Face classes.

Training on ml.p3.2xlarge and endpoints on ml.g4dn.xlarge by default; image URIs from the
SDK's Hugging Face table for the shared version matrix. Local inputs are uploaded to S3 once
(by content hash). Every launch is preceded by a cost plan, every endpoint is tagged so
``sagetwin endpoints`` can find it, and endpoints are deleted on errors and Ctrl-C.
All AWS clients honour ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from typing import Any
from urllib.parse import urlparse

from sagetwin.backends import _aws
from sagetwin.core.artifacts import local_path, metrics_from_archive
from sagetwin.core.backend import Availability
from sagetwin.core.errors import (
    ConfigurationError,
    EndpointError,
    InvocationError,
    TrainingError,
)
from sagetwin.core.hookspecs import hookimpl
from sagetwin.core.pricing import CostLine, hourly_price
from sagetwin.core.progress import Reporter
from sagetwin.core.spec import DeploySpec, TrainingResult, TrainingSpec
from sagetwin.core.versions import Stack, resolve_stack

TRAINING_INSTANCE = "ml.p3.2xlarge"
ENDPOINT_INSTANCE = "ml.g4dn.xlarge"
ENDPOINT_TIMEOUT_S = 1800.0  # endpoint creation regularly takes 10+ minutes
# train.py prints "eval_accuracy = 0.91" lines; SageMaker turns them into job metrics.
METRIC_DEFINITIONS = [{"Name": name, "Regex": rf"eval_{name} = ([0-9.eE+-]+)"}
                      for name in ("loss", "accuracy", "f1", "precision", "recall")]


@hookimpl
def sagetwin_register_backends(register):
    register(SageMakerBackend)


def parse_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def metrics_from_output(session: Any, output_uri: str) -> dict[str, float]:
    """Read metrics.json / eval_results.txt from the job's output.tar.gz, if SageMaker wrote one."""
    from botocore.exceptions import ClientError

    bucket, key = parse_s3(output_uri)
    try:
        body = session.client("s3", config=_aws.botocore_config()).get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError:
        return {}
    return metrics_from_archive(io.BytesIO(body))


class SageMakerBackend:
    """Real SageMaker training jobs and endpoints (these cost money)."""

    name = "sagemaker"
    description = f"Amazon SageMaker: {TRAINING_INSTANCE} training, {ENDPOINT_INSTANCE} endpoints (billed by AWS)"
    auto_priority = None  # never chosen implicitly: it costs money
    costs_money = True

    def __init__(self, *, role: str | None = None, bucket: str | None = None, region: str | None = None,
                 use_spot_instances: bool = False, max_wait: int | None = None,
                 checkpoint_s3_uri: str | None = None, check_quota: bool = True) -> None:
        self.recorder: _aws.RequestRecorder | None = None
        self.role = role
        self.bucket = bucket
        self.region = region
        self.use_spot_instances = use_spot_instances
        self.max_wait = max_wait
        self.checkpoint_s3_uri = checkpoint_s3_uri
        self.check_quota = check_quota
        self._boto = None
        self._sm = None

    @classmethod
    def availability(cls) -> Availability:
        try:
            import boto3
        except ImportError:
            return Availability(False, "boto3 is not installed", "pip install sagetwin (it depends on sagemaker)")
        session = boto3.Session()
        if session.get_credentials() is None:
            return Availability(False, "no AWS credentials found",
                                "run `aws configure` / `aws sso login` or set AWS_PROFILE")
        if not session.region_name:
            return Availability(False, "no AWS region configured", "set AWS_REGION or AWS_DEFAULT_REGION")
        return Availability(True, f"AWS credentials found, region {session.region_name}")

    # ------------------------------------------------------------------ sessions
    @property
    def boto(self) -> Any:
        if self._boto is None:
            if self.recorder is not None:
                import boto3

                # dry run: placeholder credentials (nothing is signed or sent), so the credential
                # chain never probes the instance metadata service; every request is answered locally
                self._boto = boto3.Session(region_name=self.region, aws_access_key_id="dry-run",
                                           aws_secret_access_key="dry-run")
                self.recorder.attach(self._boto)
            else:
                self._boto = _aws.boto_session(self.region)
                _aws.check_credentials(self._boto)
        return self._boto

    def dry_run(self, training: TrainingSpec, endpoint_instance_type: str | None, reporter: Reporter
                ) -> list[dict[str, Any]]:
        """The exact CreateTrainingJob / CreateModel / CreateEndpointConfig / CreateEndpoint requests
        fit and deploy would send, produced by the real SDK code with every AWS call answered locally."""
        if self._boto is not None:
            raise ConfigurationError("dry_run needs a fresh backend.", "create a new SageMakerBackend for it.")
        import boto3

        self.recorder = _aws.RequestRecorder(region=self.region or boto3.Session().region_name or "us-east-1")
        self.region = self.recorder.region
        self.check_quota = False
        self.role = self.role or training.role or os.environ.get("SAGETWIN_ROLE") or \
            f"arn:aws:iam::{self.recorder.account}:role/ROLE-TO-BE-GIVEN"
        # the SDK also builds clients from boto3's default session (e.g. for TensorBoard links):
        # with no credentials those would probe the EC2 metadata service, so keep that off
        with _aws.no_metadata_probe():
            result = self.fit(training, reporter)
            spec = DeploySpec(endpoint_name=f"{training.job_name}-ep", model_data=result.model_data,
                              instance_type=endpoint_instance_type)
            self.deploy(spec, reporter).delete()
        return self.recorder.launches()

    @property
    def session(self) -> Any:
        if self._sm is None:
            bucket = self.bucket or f"sagemaker-{self.boto.region_name}-{_aws.account_id(self.boto)}"
            _aws.ensure_bucket(self.boto, bucket)
            self.bucket = bucket
            self._sm = _aws.sagemaker_session(self.boto, bucket)
        return self._sm

    # ------------------------------------------------------------------ planning
    def launch_plan(self, training: TrainingSpec | None, endpoint_instance_type: str | None = None,
                    endpoint_count: int = 1) -> list[CostLine]:
        """What will be launched and what it can cost; shown (and confirmed) before anything starts."""
        lines = []
        if training is not None:
            instance = training.instance_type or TRAINING_INSTANCE
            hours = (self.max_wait or training.max_run) / 3600
            lines.append(CostLine("training" + (" (spot)" if self.use_spot_instances else ""), instance,
                                  training.instance_count, hourly_price(instance), hours))
        if endpoint_instance_type is not None or training is not None:
            instance = endpoint_instance_type or ENDPOINT_INSTANCE
            lines.append(CostLine("endpoint", instance, endpoint_count, hourly_price(instance), None))
        return lines

    def _check_quota(self, instance_type: str, count: int, usage: str) -> None:
        """Say 'no quota' before launching, where Service Quotas can tell (often 0 for p3 training)."""
        if not self.check_quota:
            return
        try:
            from botocore.config import Config

            # One quick try: this check is advisory, SageMaker itself enforces the quota.
            client = self.boto.client("service-quotas", config=Config(
                retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=10))
            paginator = client.get_paginator("list_service_quotas")
            wanted = f"{instance_type} for {usage}"
            for page in paginator.paginate(ServiceCode="sagemaker"):
                for quota in page.get("Quotas", []):
                    if quota.get("QuotaName") == wanted and quota.get("Value", 1) < count:
                        raise ConfigurationError(
                            f"your account's quota '{wanted}' is {quota['Value']:g}, but {count} instance(s) "
                            "are needed.",
                            "request an increase in the Service Quotas console (SageMaker), or pick another "
                            "instance type with instance_type=.",
                        )
        except ConfigurationError:
            raise
        except Exception:
            return  # quota API unavailable or not permitted: SageMaker itself will say ResourceLimitExceeded

    # ------------------------------------------------------------------ training
    def _s3_inputs(self, spec: TrainingSpec, reporter: Reporter) -> dict[str, str]:
        inputs = {}
        for channel, uri in spec.inputs.items():
            if uri.startswith("s3://"):
                inputs[channel] = uri
                continue
            path = local_path(uri, f"input channel {channel!r}")
            if not path.exists():
                raise ConfigurationError(f"input channel {channel!r} points to {path}, which does not exist.",
                                         "check the path passed to fit().")
            s3_uri, uploaded = _aws.upload_once(self.boto, path, self.session.default_bucket())
            reporter.step(f"sagemaker: channel {channel} {'uploaded to' if uploaded else 'already in'} {s3_uri}")
            inputs[channel] = s3_uri
        return inputs

    def estimator(self, spec: TrainingSpec, role: str, stack: Stack) -> Any:
        from sagemaker.huggingface import HuggingFace

        prefix = f"s3://{self.session.default_bucket()}/sagetwin/{spec.job_name}"
        kwargs: dict[str, Any] = {}
        if spec.instance_count > 1:
            kwargs["distribution"] = {"torch_distributed": {"enabled": True}}
        if self.use_spot_instances:
            kwargs.update(use_spot_instances=True, max_wait=self.max_wait or spec.max_run,
                          checkpoint_s3_uri=self.checkpoint_s3_uri or f"{prefix}/checkpoints")
        return HuggingFace(
            entry_point=spec.entry_point, source_dir=str(spec.source_dir),
            instance_type=spec.instance_type or TRAINING_INSTANCE, instance_count=spec.instance_count,
            role=role, transformers_version=stack.transformers, pytorch_version=stack.pytorch, py_version=stack.py,
            hyperparameters=dict(spec.hyperparameters), environment=dict(spec.environment) or None,
            sagemaker_session=self.session, output_path=f"{prefix}/output", code_location=f"{prefix}/code",
            max_run=spec.max_run, metric_definitions=METRIC_DEFINITIONS,
            tags=[{"Key": _aws.MANAGED_TAG, "Value": "true"}, {"Key": _aws.RUN_TAG, "Value": spec.job_name}],
            **kwargs,
        )

    def fit(self, spec: TrainingSpec, reporter: Reporter) -> TrainingResult:
        _aws.import_sdk()
        from sagemaker.exceptions import UnexpectedStatusException

        role = _aws.resolve_role(self.role or spec.role, self.boto)
        stack = resolve_stack(spec.transformers_version, spec.pytorch_version, spec.py_version, scope="training")
        instance = spec.instance_type or TRAINING_INSTANCE
        for line in self.launch_plan(spec, endpoint_instance_type=None)[:1]:
            reporter.step(f"sagemaker: {line.render()}")
        self._check_quota(instance, spec.instance_count, "spot training job usage" if self.use_spot_instances
                          else "training job usage")
        inputs = self._s3_inputs(spec, reporter)
        estimator = self.estimator(spec, role, stack)
        reporter.step(f"sagemaker: starting training job {spec.job_name} (transformers {stack.transformers}, "
                      f"pytorch {stack.pytorch}, {stack.py}) on {spec.instance_count} x {instance}")
        started = time.monotonic()
        try:
            with _aws.interrupts_kept():
                estimator.fit(inputs, job_name=spec.job_name, wait=True, logs="All")
        except KeyboardInterrupt:
            self._offer_to_stop(spec.job_name, reporter)
            raise
        except UnexpectedStatusException as exc:
            raise self._training_failure(spec.job_name) from exc
        except Exception as exc:
            raise self._client_error(exc, f"training job {spec.job_name}") from exc
        description = self.session.sagemaker_client.describe_training_job(TrainingJobName=spec.job_name)
        metrics = {m["MetricName"]: m["Value"] for m in description.get("FinalMetricDataList", [])}
        output_uri = estimator.model_data.rsplit("/", 1)[0] + "/output.tar.gz"
        metrics = metrics_from_output(self.boto, output_uri) or metrics
        return TrainingResult(
            job_name=spec.job_name, backend=self.name, model_data=estimator.model_data, metrics=metrics,
            output_data=output_uri, duration_s=time.monotonic() - started,
            details={"training_image": description["AlgorithmSpecification"].get("TrainingImage"),
                     "instance_type": instance, "region": self.boto.region_name,
                     "billable_seconds": description.get("BillableTimeInSeconds")},
        )

    def _offer_to_stop(self, job_name: str, reporter: Reporter) -> None:
        stop = True
        if sys.stdin.isatty():
            try:
                answer = input(f"\nStop training job {job_name}? It keeps running (and billing) otherwise. [Y/n] ")
                stop = answer.strip().lower() not in ("n", "no")
            except (EOFError, KeyboardInterrupt):
                stop = True
        if stop:
            self.session.sagemaker_client.stop_training_job(TrainingJobName=job_name)
            reporter.step(f"sagemaker: stop requested for training job {job_name}")
        else:
            reporter.step(f"sagemaker: training job {job_name} left running")

    def _training_failure(self, job_name: str) -> TrainingError:
        description = self.session.sagemaker_client.describe_training_job(TrainingJobName=job_name)
        reason = description.get("FailureReason", "no FailureReason given")
        return TrainingError(
            f"training job {job_name} ended {description.get('TrainingJobStatus')}: {reason}",
            "fix the error shown in the log below; reproduce it offline with --backend process or local.",
            exit_code=None, log_tail=self._log_tail(job_name),
        )

    def _log_tail(self, job_name: str, lines: int = 30) -> str:
        try:
            logs = self.boto.client("logs", config=_aws.botocore_config())
            group = "/aws/sagemaker/TrainingJobs"
            streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=job_name)["logStreams"]
            events: list[str] = []
            for stream in streams:
                got = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"],
                                          limit=lines, startFromHead=False)
                events += [e["message"] for e in got["events"]]
            return "\n".join(events[-lines:])
        except Exception:
            return ""

    def _client_error(self, exc: Exception, what: str) -> Exception:
        from botocore.exceptions import ClientError, NoCredentialsError

        if isinstance(exc, NoCredentialsError):
            return ConfigurationError("no AWS credentials were found.", "run `aws configure` or set AWS_PROFILE.")
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            message = exc.response.get("Error", {}).get("Message", str(exc))
            if code == "ResourceLimitExceeded":
                return ConfigurationError(f"{what}: no quota for this instance type ({message}).",
                                          "request a quota increase in Service Quotas, or choose another "
                                          "instance_type.")
            if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
                return ConfigurationError(f"{what}: AWS denied the request ({code}: {message}).",
                                          "check the credentials and that the role/user may use SageMaker and S3.")
            return EndpointError(f"{what}: AWS answered {code}: {message}", "see the AWS error above.")
        return exc

    # ------------------------------------------------------------------ endpoint registry
    def list_endpoints(self) -> list[dict[str, Any]]:
        """Endpoints created by sagetwin (found by tag) that still exist, with age and cost."""
        return managed_endpoints(self)

    def delete_endpoint(self, name: str) -> None:
        delete_managed_endpoint(self, name)

    # ------------------------------------------------------------------ serving
    def deploy(self, spec: DeploySpec, reporter: Reporter) -> SageMakerEndpoint:
        _aws.import_sdk()
        from sagemaker.exceptions import UnexpectedStatusException
        from sagemaker.huggingface import HuggingFaceModel

        role = _aws.resolve_role(self.role or spec.role, self.boto)
        stack = resolve_stack(spec.transformers_version, spec.pytorch_version, spec.py_version, scope="inference")
        model_data = spec.model_data
        if not model_data.startswith("s3://"):
            path = local_path(model_data, "model_data")
            if not path.is_file():
                raise ConfigurationError(f"model_data {path} does not exist.", "pass a model.tar.gz.")
            model_data, _ = _aws.upload_once(self.boto, path, self.session.default_bucket(), "sagetwin/models")
            model_data += "/" + path.name
        instance = spec.instance_type or ENDPOINT_INSTANCE
        for line in self.launch_plan(None, instance, spec.initial_instance_count):
            reporter.step(f"sagemaker: {line.render()}")
        self._check_quota(instance, spec.initial_instance_count, "endpoint usage")
        model = HuggingFaceModel(
            model_data=model_data, role=role, transformers_version=stack.transformers,
            pytorch_version=stack.pytorch, py_version=stack.py, env=dict(spec.environment) or None,
            sagemaker_session=self.session, name=spec.endpoint_name,
        )
        tags = [{"Key": _aws.MANAGED_TAG, "Value": "true"}, {"Key": _aws.RUN_TAG, "Value": spec.endpoint_name}]
        endpoint = SageMakerEndpoint(spec.endpoint_name, self.session, instance, spec.initial_instance_count)
        reporter.step(f"sagemaker: creating endpoint {spec.endpoint_name} on {spec.initial_instance_count} x "
                      f"{instance} (SageMaker takes several minutes)")
        try:
            with _aws.interrupts_kept():
                model.deploy(initial_instance_count=spec.initial_instance_count, instance_type=instance,
                             endpoint_name=spec.endpoint_name, tags=tags, wait=False)
            self._wait_in_service(spec.endpoint_name, spec.startup_timeout or ENDPOINT_TIMEOUT_S, reporter)
        except BaseException as exc:
            endpoint.delete()  # a half-created endpoint still bills
            if isinstance(exc, (UnexpectedStatusException, EndpointError)):
                reason = self._endpoint_failure(spec.endpoint_name)
                raise EndpointError(f"endpoint {spec.endpoint_name} did not reach InService: {reason}",
                                    "check the model archive and the CloudWatch logs "
                                    f"/aws/sagemaker/Endpoints/{spec.endpoint_name}; try it first with "
                                    "--backend process or local.") from exc
            if isinstance(exc, Exception):
                raise self._client_error(exc, f"endpoint {spec.endpoint_name}") from exc
            raise
        return endpoint

    def _wait_in_service(self, name: str, timeout: float, reporter: Reporter) -> None:
        """Poll quickly at first, then every 30 s (endpoint creation usually takes minutes)."""
        client = self.session.sagemaker_client
        deadline = time.monotonic() + timeout
        delay = 1.0
        last = None
        while True:
            status = client.describe_endpoint(EndpointName=name)["EndpointStatus"]
            if status != last:
                reporter.step(f"sagemaker: endpoint {name} is {status}")
                last = status
            if status == "InService":
                return
            if status in ("Failed", "OutOfService", "Deleting"):
                raise EndpointError(f"endpoint {name} is {status}.", "see its FailureReason.")
            if time.monotonic() > deadline:
                raise EndpointError(f"endpoint {name} was not InService after {timeout:.0f}s.",
                                    "raise startup_timeout, or check the endpoint's CloudWatch logs.")
            time.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _endpoint_failure(self, name: str) -> str:
        try:
            return self.session.sagemaker_client.describe_endpoint(EndpointName=name).get("FailureReason", "")
        except Exception:
            return "no FailureReason available"


class SageMakerEndpoint:
    """An endpoint on SageMaker; deleting it also deletes its config and model."""

    def __init__(self, name: str, session: Any, instance_type: str, count: int) -> None:
        self.name = name
        self.session = session
        self.instance_type = instance_type
        self.count = count
        self.deleted = False

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        from botocore.exceptions import ClientError

        try:
            response = self.session.sagemaker_runtime_client.invoke_endpoint(
                EndpointName=self.name, Body=body, ContentType=content_type, Accept=accept)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = int(exc.response.get("OriginalStatusCode") or exc.response.get("ResponseMetadata", {})
                         .get("HTTPStatusCode", 400))
            raise InvocationError(f"endpoint {self.name} answered {status}: {error.get('Message', exc)}",
                                  'send JSON such as {"inputs": "text"} with content type application/json.',
                                  status=status, body=str(exc.response.get("OriginalMessage", ""))) from None
        return response["Body"].read(), response.get("ContentType", "application/json")

    def delete(self) -> None:
        """Delete endpoint, endpoint config and model; what is already gone is skipped."""
        from botocore.exceptions import ClientError

        if self.deleted:
            return

        def missing(exc: Exception) -> bool:  # SageMaker says ValidationException for "could not find"
            return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
                "ValidationException", "ResourceNotFound")

        _aws.delete_endpoint_resources(self.session.sagemaker_client, self.name, missing_ok=missing)
        self.deleted = True


def managed_endpoints(backend: SageMakerBackend) -> list[dict[str, Any]]:
    """Endpoints this tool created (by tag), with age and hourly cost."""
    client = backend.boto.client("sagemaker", config=_aws.botocore_config())
    found = []
    for page in client.get_paginator("list_endpoints").paginate():
        for endpoint in page["Endpoints"]:
            tags = {t["Key"]: t["Value"] for t in client.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]}
            if tags.get(_aws.MANAGED_TAG) != "true":
                continue
            description = client.describe_endpoint(EndpointName=endpoint["EndpointName"])
            config = client.describe_endpoint_config(EndpointConfigName=description["EndpointConfigName"])
            hourly = 0.0
            known = True
            for variant in config["ProductionVariants"]:
                price = hourly_price(variant.get("InstanceType", ""))
                known = known and price is not None
                hourly += (price or 0.0) * variant.get("InitialInstanceCount", 1)
            created = endpoint["CreationTime"]
            age_h = (time.time() - created.timestamp()) / 3600
            found.append({"name": endpoint["EndpointName"], "status": endpoint["EndpointStatus"],
                          "age_hours": round(age_h, 2), "hourly_usd": round(hourly, 3) if known else None,
                          "instances": [f"{v.get('InitialInstanceCount', 1)} x {v.get('InstanceType')}"
                                        for v in config["ProductionVariants"]]})
    return found


def delete_managed_endpoint(backend: SageMakerBackend, name: str) -> None:
    client = backend.boto.client("sagemaker", config=_aws.botocore_config())
    description = client.describe_endpoint(EndpointName=name)
    client.delete_endpoint(EndpointName=name)
    with contextlib.suppress(Exception):
        client.delete_endpoint_config(EndpointConfigName=description["EndpointConfigName"])
    with contextlib.suppress(Exception):
        client.delete_model(ModelName=name)

