"""The ``sagemaker`` backend: the same job on Amazon SageMaker through SDK v2's Hugging Face classes.

Training on ml.p3.2xlarge and endpoints on ml.g4dn.xlarge by default; image URIs from the
SDK's Hugging Face table for the shared version matrix. Local inputs are uploaded to S3 once
(by content hash). Every launch is preceded by a cost plan (``planning``), every endpoint is
tagged so ``sagetwin endpoints`` can find it (``endpoints``), and endpoints are deleted on
errors and Ctrl-C. All AWS clients honour ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``.
"""

from __future__ import annotations

import io
import os
import time
from typing import Any
from urllib.parse import urlparse

from sagetwin.backends.sagemaker import diagnosis, endpoints, planning
from sagetwin.backends.sagemaker.endpoints import SageMakerEndpoint
from sagetwin.backends.sagemaker.planning import ENDPOINT_INSTANCE, TRAINING_INSTANCE, sdk_versions
from sagetwin.backends.sagemaker.pricing import CostLine, hourly_price
from sagetwin.core.backend import Check
from sagetwin.core.errors import EndpointError, SagetwinError
from sagetwin.core.progress import Asks, Reporter
from sagetwin.core.spec import DeploySpec, TrainingResult, TrainingSpec
from sagetwin.core.versions import Stack, resolve_stack
from sagetwin.emulation.artifacts import local_input, local_model_archive, metrics_from_archive
from sagetwin.emulation.model_sources import cloud_model
from sagetwin.sagemaker_sdk import boto as aws
from sagetwin.sagemaker_sdk import sdk as _aws

ENDPOINT_TIMEOUT_S = 1800.0  # endpoint creation regularly takes 10+ minutes
# train.py prints "eval_accuracy = 0.91" lines; SageMaker turns them into job metrics.
METRIC_DEFINITIONS = [{"Name": name, "Regex": rf"eval_{name} = ([0-9.eE+-]+)"}
                      for name in ("loss", "accuracy", "f1", "precision", "recall")]


def parse_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def metrics_from_output(session: Any, output_uri: str) -> dict[str, float]:
    """Read metrics.json / eval_results.txt from the job's output.tar.gz, if SageMaker wrote one."""
    from botocore.exceptions import ClientError

    bucket, key = parse_s3(output_uri)
    try:
        body = session.client("s3", config=aws.botocore_config()).get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError:
        return {}
    return metrics_from_archive(io.BytesIO(body))


class SageMakerBackend:
    """Real SageMaker training jobs and endpoints (these cost money)."""

    name = "sagemaker"
    description = f"Amazon SageMaker: {TRAINING_INSTANCE} training, {ENDPOINT_INSTANCE} endpoints (billed by AWS)"

    def __init__(self, *, role: str | None = None, bucket: str | None = None, region: str | None = None,
                 use_spot_instances: bool = False, max_wait: int | None = None,
                 checkpoint_s3_uri: str | None = None, check_quota: bool = True,
                 boto_session: Any = None) -> None:
        self.role = role
        self.bucket = bucket
        self.region = region
        self.use_spot_instances = use_spot_instances
        self.max_wait = max_wait
        self.checkpoint_s3_uri = checkpoint_s3_uri
        self.check_quota = check_quota
        self._boto = boto_session  # given: the caller vouches for it (a dry run's recording session)
        self._sm = None

    @classmethod
    def availability(cls) -> Check:
        try:
            import boto3
        except ImportError:
            return Check(False, "boto3 is not installed", "pip install sagetwin (it depends on sagemaker)")
        session = boto3.Session()
        if session.get_credentials() is None:
            return Check(False, "no AWS credentials found", "run `aws configure` / `aws sso login` or set AWS_PROFILE")
        if not session.region_name:
            return Check(False, "no AWS region configured", "set AWS_REGION or AWS_DEFAULT_REGION")
        return Check(True, f"AWS credentials found, region {session.region_name}")

    @property
    def boto(self) -> Any:
        if self._boto is None:
            self._boto = aws.boto_session(self.region)
            aws.check_credentials(self._boto)
        return self._boto

    @property
    def session(self) -> Any:
        if self._sm is None:
            account = aws.account_id(self.boto)
            bucket = self.bucket or f"sagemaker-{self.boto.region_name}-{account}"
            aws.ensure_bucket(self.boto, bucket, account)
            self.bucket = bucket
            self._sm = aws.sagemaker_session(self.boto, bucket)
        return self._sm

    def launch_plan(self, training: TrainingSpec | None, endpoint_instance_type: str | None = None,
                    endpoint_count: int = 1) -> list[CostLine]:
        """What will be launched and what it can cost; shown (and confirmed) before anything starts."""
        return planning.launch_plan(training, endpoint_instance_type, endpoint_count=endpoint_count,
                                    spot=self.use_spot_instances, max_wait=self.max_wait)

    def dry_run(self, training: TrainingSpec, endpoint_instance_type: str | None, reporter: Reporter
                ) -> list[dict[str, Any]]:
        """The exact Create* requests fit and deploy would send, produced by the real SDK code against
        a recording session (``dry_run``), by a twin of this backend; nothing is sent."""
        import boto3

        from sagetwin.backends.sagemaker.dry_run import RequestRecorder

        recorder = RequestRecorder(region=self.region or boto3.Session().region_name or "us-east-1")
        role = self.role or training.role or os.environ.get("SAGETWIN_ROLE") or \
            f"arn:aws:iam::{recorder.account}:role/ROLE-TO-BE-GIVEN"
        twin = SageMakerBackend(role=role, bucket=self.bucket, region=recorder.region,
                                use_spot_instances=self.use_spot_instances, max_wait=self.max_wait,
                                checkpoint_s3_uri=self.checkpoint_s3_uri, check_quota=False,
                                boto_session=recorder.session())
        # the SDK also builds clients from boto3's default session (e.g. for TensorBoard links):
        # with no credentials those would probe the EC2 metadata service, so keep that off
        with _aws.no_metadata_probe():
            result = twin.fit(training, reporter)
            spec = DeploySpec(endpoint_name=f"{training.job_name}-ep", model_data=result.model_data,
                              instance_type=endpoint_instance_type,
                              transformers_version=training.transformers_version,
                              pytorch_version=training.pytorch_version, py_version=training.py_version)
            twin.deploy(spec, reporter).delete()
        return recorder.launches()

    def _check_quota(self, instance_type: str, count: int, usage: str) -> None:
        if self.check_quota:
            planning.check_quota(self.boto, instance_type, count, usage)

    def _s3_inputs(self, spec: TrainingSpec, reporter: Reporter) -> dict[str, str]:
        inputs = {}
        for channel, uri in spec.inputs.items():
            if uri.startswith("s3://"):
                inputs[channel] = uri
                continue
            s3_uri, uploaded = aws.upload_once(self.boto, local_input(uri, channel), self.session.default_bucket(),
                                            say=lambda m: reporter.step(f"sagemaker: {m}"))
            reporter.step(f"sagemaker: channel {channel} {'uploaded to' if uploaded else 'already in'} {s3_uri}")
            inputs[channel] = s3_uri
        return inputs

    def estimator(self, spec: TrainingSpec, role: str, stack: Stack) -> Any:
        from sagemaker.huggingface import HuggingFace

        prefix = f"s3://{self.session.default_bucket()}/sagetwin/{spec.job_name}"
        kwargs: dict[str, Any] = {}
        if spec.distribution:
            kwargs["distribution"] = dict(spec.distribution)
        if self.use_spot_instances:
            kwargs.update(use_spot_instances=True, max_wait=self.max_wait or spec.max_run,
                          checkpoint_s3_uri=self.checkpoint_s3_uri or f"{prefix}/checkpoints")
        if spec.image_uri:
            kwargs["image_uri"] = spec.image_uri
        return HuggingFace(
            entry_point=spec.entry_point, source_dir=str(spec.source_dir),
            instance_type=spec.instance_type or TRAINING_INSTANCE, instance_count=spec.instance_count,
            role=role, hyperparameters=dict(spec.hyperparameters), **sdk_versions(spec, stack),
            environment=dict(spec.environment) or None,
            sagemaker_session=self.session, output_path=f"{prefix}/output", code_location=f"{prefix}/code",
            max_run=spec.max_run, metric_definitions=METRIC_DEFINITIONS,
            tags=[{"Key": aws.MANAGED_TAG, "Value": "true"}, {"Key": aws.RUN_TAG, "Value": spec.job_name}],
            **kwargs,
        )

    def fit(self, spec: TrainingSpec, reporter: Reporter) -> TrainingResult:
        _aws.import_sdk()
        role = aws.resolve_role(self.role or spec.role, self.boto)
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
        self._run_training(estimator, inputs, spec.job_name, reporter)
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

    def _run_training(self, estimator: Any, inputs: dict[str, str], job_name: str, reporter: Reporter) -> None:
        from sagemaker.exceptions import UnexpectedStatusException

        try:
            with _aws.interrupts_kept():
                estimator.fit(inputs or None, job_name=job_name, wait=True, logs="All")  # {} would send []
        except KeyboardInterrupt:
            self._stop_unless_kept(job_name, reporter)
            raise
        except UnexpectedStatusException as exc:
            raise diagnosis.training_failure(self.boto, self.session.sagemaker_client, job_name) from exc
        except Exception as exc:  # lost while following the job (logs, STS, network): it would bill on
            error = diagnosis.client_error(exc, f"training job {job_name}")
            price = hourly_price(str(getattr(estimator, "instance_type", "")))
            stopped = diagnosis.stop_after_error(
                self.session.sagemaker_client, job_name, price and price * int(getattr(estimator, "instance_count", 1)),
                getattr(estimator, "max_run", None), cause=exc)
            if stopped and isinstance(error, SagetwinError):
                error.problem += " " + stopped
            elif stopped:
                error.add_note(stopped)
            raise error from exc

    def _stop_unless_kept(self, job_name: str, reporter: Reporter) -> None:
        """Ctrl-C stops the job (it bills until it ends) unless the person, asked, keeps it."""
        question = f"\nStop training job {job_name}? It keeps running (and billing) otherwise."
        if isinstance(reporter, Asks) and not reporter.ask(question, default=True):
            reporter.step(f"sagemaker: training job {job_name} left running")
            return
        self.session.sagemaker_client.stop_training_job(TrainingJobName=job_name)
        reporter.step(f"sagemaker: stop requested for training job {job_name}")

    def list_endpoints(self) -> list[dict[str, Any]]:
        """Endpoints created by sagetwin (found by tag) that still exist, with age and cost."""
        return endpoints.managed_endpoints(self.boto)

    def delete_endpoint(self, name: str) -> None:
        endpoints.delete_endpoint(self.boto.client("sagemaker", config=aws.botocore_config()), name)

    def _model_data_in_s3(self, model_data: str) -> str:
        if model_data.startswith("s3://"):
            return model_data
        path = local_model_archive(model_data)
        uri, _ = aws.upload_once(self.boto, path, self.session.default_bucket(), "sagetwin/models")
        return f"{uri}/{path.name}"

    def deploy(self, spec: DeploySpec, reporter: Reporter) -> SageMakerEndpoint:
        _aws.import_sdk()
        from sagemaker.huggingface import HuggingFaceModel

        role = aws.resolve_role(self.role or spec.role, self.boto)
        stack = resolve_stack(spec.transformers_version, spec.pytorch_version, spec.py_version, scope="inference")
        model_data, environment = cloud_model(spec.model_data, spec.environment)
        model_data = self._model_data_in_s3(model_data) if model_data else None  # None: a Hub id in env
        instance = spec.instance_type or ENDPOINT_INSTANCE
        for line in self.launch_plan(None, instance, spec.initial_instance_count):
            reporter.step(f"sagemaker: {line.render()}")
        self._check_quota(instance, spec.initial_instance_count, "endpoint usage")
        model = HuggingFaceModel(
            model_data=model_data, role=role, **sdk_versions(spec, stack), env=environment or None,
            sagemaker_session=self.session, name=spec.endpoint_name,
            **({"image_uri": spec.image_uri} if spec.image_uri else {}),
        )
        endpoint = SageMakerEndpoint(spec.endpoint_name, self.session, instance, spec.initial_instance_count)
        reporter.step(f"sagemaker: creating endpoint {spec.endpoint_name} on {spec.initial_instance_count} x "
                      f"{instance} (SageMaker takes several minutes)")
        try:
            with _aws.interrupts_kept():
                model.deploy(initial_instance_count=spec.initial_instance_count, instance_type=instance,
                             endpoint_name=spec.endpoint_name, wait=False,
                             tags=[{"Key": aws.MANAGED_TAG, "Value": "true"},
                                   {"Key": aws.RUN_TAG, "Value": spec.endpoint_name}])
            endpoints.wait_in_service(self.session.sagemaker_client, spec.endpoint_name,
                                      spec.startup_timeout or ENDPOINT_TIMEOUT_S, reporter)
        except BaseException as exc:
            failure: BaseException = exc
            try:
                failure = self._deploy_failure(exc, spec.endpoint_name)  # its FailureReason goes with the endpoint
            finally:
                diagnosis.delete_keeping(failure, endpoint, hourly_price(instance))  # a half-created one bills
            if failure is exc:
                raise
            raise failure from exc
        return endpoint

    def _deploy_failure(self, exc: BaseException, name: str) -> BaseException:
        from sagemaker.exceptions import UnexpectedStatusException

        if isinstance(exc, (UnexpectedStatusException, EndpointError)):
            reason = diagnosis.endpoint_failure_reason(self.session.sagemaker_client, name)
            return EndpointError(f"endpoint {name} did not reach InService: {reason}",
                                 f"check the model archive and the CloudWatch logs /aws/sagemaker/Endpoints/{name}; "
                                 "try it first with --backend process or local.")
        if isinstance(exc, Exception):
            return diagnosis.client_error(exc, f"endpoint {name}")
        return exc
