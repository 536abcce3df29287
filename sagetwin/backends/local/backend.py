"""The ``local`` backend: SageMaker Python SDK v2 local mode in Docker.

The SDK's own ``HuggingFace`` estimator and ``HuggingFaceModel`` run the job in containers that
honour the DLC contract (images from ``images``, at version parity with the cloud), on the GPU when
Docker can reach one. This module owns the sharp edges of local mode: region, role and credentials
exist only in its own session; telemetry is off; inputs are staged outside the folders the SDK
refuses; the serving port is free; a dead serving container fails fast (``readiness``); containers and
the network are removed after training, on ``delete_endpoint``, errors and Ctrl-C (``containers``);
files the containers wrote are handed back to the invoking user; checkpoints mounted (``checkpoints``)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sagetwin.backends.local import images, readiness
from sagetwin.backends.local.checkpoints import checkpoint_volume
from sagetwin.backends.local.containers import (
    container_report,
    new_run_labels,
    our_containers,
    reap_orphans,
)
from sagetwin.backends.local.docker import (
    compose_command,
    detect_gpu,
    docker_reachable,
    engine_lost,
    preferred_compose,
)
from sagetwin.backends.local.emulated_containers import emulated_model
from sagetwin.backends.local.endpoint import LocalEndpoint, open_front
from sagetwin.backends.local.estimators import local_estimator
from sagetwin.backends.local.sdk_folders import reap_orphaned_folders, run_root, tidy_after_run
from sagetwin.core.backend import Check
from sagetwin.core.errors import BackendUnavailableError, ConfigurationError, EndpointError, TrainingError, log_excerpt
from sagetwin.core.paths import building, private_dir
from sagetwin.core.progress import Reporter
from sagetwin.core.spec import DeploySpec, TrainingResult, TrainingSpec
from sagetwin.core.versions import resolve_stack
from sagetwin.emulation.archives import check_archive
from sagetwin.emulation.artifacts import local_input, local_path, metrics_from_archive
from sagetwin.emulation.datasets_compat import readable_by
from sagetwin.emulation.dlc_packages import dlc_datasets_version
from sagetwin.emulation.model_sources import TOOLKIT_DEFAULT_PROGRAM, served_model
from sagetwin.emulation.processes import free_port
from sagetwin.emulation.runtime_front import RuntimeFront
from sagetwin.sagemaker_sdk import sdk as _aws
from sagetwin.sagemaker_sdk.boto import folder_digest
from sagetwin.sagemaker_sdk.distribution import check_distribution

LOCAL_ROLE = "arn:aws:iam::000000000000:role/sagetwin-local"  # contains "/": the SDK skips IAM
LOCAL_REGION = "us-east-1"
LOCAL_BUCKET = "sagetwin-local"  # never contacted: local_code keeps everything on this machine
# SDK >= 2.256 refuses file:// data under these folders (and ~ is /root for root).
REFUSED_PREFIXES = ("/root", "/etc", "/var/lib", str(Path.home() / ".aws"), str(Path.home() / ".ssh"),
                    str(Path.home() / ".docker"), str(Path.home() / ".config"))


class LocalBackend:
    """SageMaker local mode: the job in Docker containers honouring the DLC contract."""

    name = "local"
    description = "SageMaker SDK v2 local mode in Docker, images at parity with the DLCs (GPU if available)"
    auto_priority = 20

    def __init__(self, *, instance_type: str | None = None, image_uri: str | None = None,
                 inference_image_uri: str | None = None, work_dir: str | None = None,
                 build_images: bool = True) -> None:
        if instance_type not in (None, "local", "local_gpu"):
            raise ConfigurationError(f"the local backend runs instance_type 'local' or 'local_gpu', not "
                                     f"{instance_type!r}.", "omit it to choose by GPU availability.")
        self.instance_type = instance_type
        self.image_uri = image_uri
        self.inference_image_uri = inference_image_uri
        # outside the folders SDK local mode refuses (~ is /root for root), and private: see private_dir
        self.work_dir = Path(work_dir or Path(tempfile.gettempdir()) / f"sagetwin-local-{os.getuid()}")
        self.build_images = build_images
        self._session: Any = None
        self._orphans_reaped = False

    @classmethod
    def availability(cls) -> Check:
        ok, why = docker_reachable()
        if not ok:
            return Check(False, why, "start Docker (`bash scripts/docker-engine.sh`), or use --backend process")
        compose, version = compose_command()
        if compose is None:
            return Check(False, version, "install docker-compose or the docker compose plugin")
        return Check(True, f"{why}, {version}")

    @property
    def session(self) -> Any:
        """A LocalSession with its own region and credentials; nothing is read from or written to ~/.aws."""
        if self._session is None:
            import boto3

            _aws.import_sdk()
            from sagemaker.local import LocalSession

            boto = boto3.Session(region_name=LOCAL_REGION, aws_access_key_id="sagetwin-local",
                                 aws_secret_access_key="sagetwin-local")
            private_dir(self.work_dir)
            session = LocalSession(boto_session=boto, default_bucket=LOCAL_BUCKET,
                                   sagemaker_config=_aws.SDK_CONFIG)
            session.config = {"local": {"local_code": True, "container_root": str(self.work_dir)}}
            self._session = session
        return self._session

    def _prepare(self, reporter: Reporter) -> Any:
        """The session (importing the SDK quietly), and containers of killed runs gone, once per backend."""
        session = self.session
        if not self._orphans_reaped:
            reap_orphans(reporter)
            reap_orphaned_folders(self.work_dir, reporter)
            self._orphans_reaped = True
        return session

    def _image(self, scope: str, stack: Any, explicit: str | None, reporter: Reporter) -> tuple[str, list]:
        image, gaps = images.choose_image(scope, stack, explicit, reporter, build_missing=self.build_images)
        parity = "; ".join(g.render() for g in gaps) or ("not judged (an image of your own)" if explicit else "exact")
        reporter.step(f"local: {scope} image {image} (parity: {parity})")
        return image, gaps

    def choose_instance_type(self, requested: str | None, reporter: Reporter) -> str:
        if requested in ("local", "local_gpu"):
            chosen = requested
        elif requested and not requested.startswith("local"):
            reporter.step(f"local: instance type {requested} is simulated by a local container")
            chosen = self.instance_type or ("local_gpu" if detect_gpu().usable else "local")
        else:
            gpu = detect_gpu()
            chosen = self.instance_type or ("local_gpu" if gpu.usable else "local")
            reporter.step(f"local: {'GPU' if chosen == 'local_gpu' else 'CPU'} ({gpu.reason})")
        if chosen == "local_gpu" and compose_command()[0] != ["docker", "compose"]:
            raise BackendUnavailableError(
                "local_gpu needs docker compose v2: the SDK adds a `deploy:` key that docker-compose v1 rejects.",
                "run `bash scripts/docker-engine.sh` (it installs the v2 plugin), or pass instance_type='local' "
                "to train on the CPU.")
        return chosen

    def stage(self, path: Path, *, always: bool = False) -> Path:
        """Inputs under folders the SDK refuses (and, ``always``, anything the SDK would write next
        to) are hard-linked (or copied) into the private work dir, once, and checked by digest."""
        resolved = path.resolve()
        if not always and not str(resolved).startswith(REFUSED_PREFIXES):
            return resolved
        digest = folder_digest(resolved)
        target = self.work_dir / "inputs" / digest
        if target.exists() and folder_digest(target / resolved.name if resolved.is_file() else target) != digest:
            shutil.rmtree(target)  # not what it claims to be: never hand it to a job
        if not target.exists():
            with building(target) as tmp:
                if resolved.is_file():
                    images.link_or_copy(str(resolved), str(tmp / resolved.name))
                else:
                    shutil.copytree(resolved, tmp, copy_function=images.link_or_copy, symlinks=False,
                                    dirs_exist_ok=True)
        return target / resolved.name if resolved.is_file() else target

    def _labelled(self, session: Any) -> str:
        """A new run id; every container the next SDK call starts carries it (and its owner)."""
        run_id, labels = new_run_labels()
        session.config["local"]["container_config"] = {"labels": labels}
        session.config["local"]["container_root"] = str(run_root(self.work_dir, run_id))  # one folder per run
        return run_id

    def fit(self, spec: TrainingSpec, reporter: Reporter) -> TrainingResult:
        stack = resolve_stack(spec.transformers_version, spec.pytorch_version, spec.py_version, scope="training")
        check_distribution(spec, stack)  # the cloud estimator's own check, which the local image would skip
        session = self._prepare(reporter)
        image, gaps = self._image("training", stack, spec.image_uri or self.image_uri, reporter)
        instance_type = self.choose_instance_type(spec.instance_type, reporter)
        datasets_version = dlc_datasets_version(stack.transformers, stack.pytorch, stack.py)
        inputs = {channel: self.stage(readable_by(local_input(uri, channel), datasets_version or "")).as_uri()
                  for channel, uri in spec.inputs.items()}
        output = self.work_dir / "runs" / spec.job_name
        output.mkdir(parents=True, exist_ok=True)
        estimator = local_estimator(spec, stack, image=image, instance_type=instance_type, role=LOCAL_ROLE,
                                    session=session, output_uri=output.as_uri())
        reporter.step(f"local: training job {spec.job_name} in {spec.instance_count} container(s) of {image}")
        started = time.monotonic()
        run_id = self._labelled(session)
        with checkpoint_volume(spec, session.config["local"]["container_root"]):
            self._run_training(estimator, inputs, spec.job_name, run_id, image, output)
        model_data = estimator.model_data
        output_tar = local_path(model_data, "model_data").with_name("output.tar.gz")
        return TrainingResult(
            job_name=spec.job_name, backend=self.name, model_data=model_data,
            metrics=metrics_from_archive(output_tar), output_data=output_tar.as_uri(),
            duration_s=time.monotonic() - started,
            details={"image": image, "instance_type": instance_type, "parity": [g.render() for g in gaps]},
        )

    def _run_training(self, estimator: Any, inputs: dict[str, str], job_name: str, run_id: str, image: str,
                      output: Path) -> None:
        """``estimator.fit``; the job's containers are removed whatever happens, Ctrl-C included."""
        failure: BaseException | None = None
        try:
            with _aws.interrupts_kept(), preferred_compose():
                estimator.fit(inputs, job_name=job_name, wait=True, logs=True)
        except BaseException as exc:
            failure = exc
        finally:
            mine = our_containers(run_id)
            code, tail = container_report(mine) if failure is not None else (None, "")
            tidy_after_run(self.work_dir, run_id, image, containers=mine, output=output, failure=failure)
        if isinstance(failure, Exception):
            raise engine_lost(f"training job {job_name}") or TrainingError(
                f"training job {job_name} failed in Docker"
                + (f": the container exited with code {code}" if code is not None else f": {failure}") + ".",
                "fix the error in the log below; `sagetwin run --backend process` reproduces it without Docker.",
                exit_code=code, log_tail=tail,
            ) from failure
        if failure is not None:
            raise failure

    def deploy(self, spec: DeploySpec, reporter: Reporter) -> LocalEndpoint:
        session = self._prepare(reporter)
        # Clients call a runtime front, listening from here on so its address stays ours; the container
        # is published for it on another port, on 127.0.0.1 only (the SDK writes "<serving_port>:8080",
        # which would listen on every address).
        container_port = free_port()
        front = open_front(spec.port, container_port, spec.invocation_timeout)
        session.config["local"]["serving_port"] = f"127.0.0.1:{container_port}"
        try:
            return self._deploy_behind(front, spec, session, reporter)
        except BaseException:
            front.close()
            raise

    def _deploy_behind(self, front: RuntimeFront, spec: DeploySpec, session: Any, reporter: Reporter
                       ) -> LocalEndpoint:
        if spec.server == "inference-toolkit":
            model = self._toolkit_model(spec, session, reporter)
        else:  # TGI, TEI: their emulation, in an image of its own
            model = emulated_model(spec, lambda archive: self.stage(archive, always=True), session, reporter,
                                   role=LOCAL_ROLE, build_missing=self.build_images, front_token=front.token)
        instance_type = self.choose_instance_type(spec.instance_type, reporter)
        reporter.step(f"local: serving container from {model.image_uri} on {front.url}")
        started = time.monotonic()
        endpoint = self._start_serving(model, spec, instance_type, front, session)
        reporter.step(f"local: model loaded and /ping answered after {time.monotonic() - started:.1f}s")
        return endpoint

    def _toolkit_model(self, spec: DeploySpec, session: Any, reporter: Reporter) -> Any:
        """The SDK's ``HuggingFaceModel`` served by the inference toolkit in the (parity) image."""
        from sagemaker.huggingface import HuggingFaceModel

        stack = resolve_stack(spec.transformers_version, spec.pytorch_version, spec.py_version, scope="inference")
        image, _ = self._image("inference", stack, spec.image_uri or self.inference_image_uri, reporter)
        archive, environment = served_model(spec.model_data, spec.environment, reporter.step)
        # One MMS worker by default (the DLC starts one per vCPU): on a laptop they would only compete
        # for the same cores while loading. SAGEMAKER_MODEL_SERVER_WORKERS in env= overrides it.
        env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", **environment}
        # hosting never passes the SDK's empty SAGEMAKER_PROGRAM (hosted_environment); local mode would
        env.setdefault("SAGEMAKER_PROGRAM", TOOLKIT_DEFAULT_PROGRAM)
        staged = self.stage(archive, always=True)  # the SDK unpacks model_data next to itself: a private copy,
        check_archive(staged)  # checked by sagetwin first: the SDK's tarfile filter is only as safe as this Python
        return HuggingFaceModel(
            model_data=staged.as_uri(), image_uri=image, role=LOCAL_ROLE, env=env,
            transformers_version=stack.transformers, pytorch_version=stack.pytorch, py_version=stack.py,
            sagemaker_session=session, name=spec.endpoint_name,
            # with a code location the SDK does not resolve (and create) a default S3 bucket via STS
            code_location=f"s3://{LOCAL_BUCKET}/{spec.endpoint_name}",
        )

    def _start_serving(self, model: Any, spec: DeploySpec, instance_type: str, front: RuntimeFront,
                       session: Any) -> LocalEndpoint:
        """``model.deploy`` with the fast health check; on any failure the endpoint is removed and
        the container's exit code and log tail are reported."""
        run_id = self._labelled(session)
        endpoint = LocalEndpoint(spec.endpoint_name, front, session, spec.invocation_timeout, run_id=run_id,
                                 work_dir=self.work_dir, image=str(model.image_uri))
        try:
            with _aws.interrupts_kept(), preferred_compose(), readiness.fast_health_check(
                    lambda: sorted(our_containers(run_id)), spec.startup_timeout or 600.0):
                # Local mode serves synchronously inside CreateEndpoint (with the health check above);
                # wait=True would only add the SDK's 30 s poll sleep before its first DescribeEndpoint.
                model.deploy(initial_instance_count=spec.initial_instance_count, instance_type=instance_type,
                             endpoint_name=spec.endpoint_name, wait=False)
        except BaseException as exc:
            endpoint.containers = our_containers(run_id)
            code, tail = container_report(endpoint.containers)
            endpoint.delete_after(exc)
            if isinstance(exc, Exception):
                raise engine_lost(f"the start of endpoint {spec.endpoint_name}") or EndpointError(
                    f"endpoint {spec.endpoint_name} did not start: {exc}"
                    + (f" (container exit code {code})" if code is not None else ""),
                    "read the container log below; for large models raise startup_timeout.",
                    details=log_excerpt("the serving container's log", tail),
                ) from exc
            raise
        endpoint.containers = our_containers(run_id)
        front.ready()
        return endpoint
