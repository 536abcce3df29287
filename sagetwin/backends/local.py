"""The ``local`` backend: SageMaker Python SDK v2 local mode in Docker.

The SDK's own ``HuggingFace`` estimator and ``HuggingFaceModel`` run the job in containers
that honour the DLC contract (images from ``images.py``, at version parity with the cloud),
on the GPU when Docker can reach one. This module owns the sharp edges of local mode:
region, role and credentials exist only in its own session; telemetry is off; inputs are
staged outside the folders the SDK refuses; the serving port is free; a dead serving
container fails fast instead of after 120 s; containers and the ``sagemaker-local`` network
are removed after training, on ``delete_endpoint``, on errors and on Ctrl-C; files the
containers wrote are handed back to the invoking user.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagetwin.backends import _aws, images, local_serving
from sagetwin.core.artifacts import local_path, metrics_from_archive
from sagetwin.core.backend import Availability
from sagetwin.core.errors import BackendUnavailableError, ConfigurationError, EndpointError, TrainingError
from sagetwin.core.hookspecs import hookimpl
from sagetwin.core.http_endpoint import LocalHttpEndpoint
from sagetwin.core.processes import choose_port, port_is_free
from sagetwin.core.progress import Reporter
from sagetwin.core.spec import DeploySpec, TrainingResult, TrainingSpec
from sagetwin.core.versions import resolve_stack

LOCAL_ROLE = "arn:aws:iam::000000000000:role/sagetwin-local"  # contains "/": the SDK skips IAM
LOCAL_REGION = "us-east-1"
LOCAL_BUCKET = "sagetwin-local"  # never contacted: local_code keeps everything on this machine
NETWORK = "sagemaker-local"
# SDK >= 2.256 refuses file:// data under these folders (and ~ is /root for root).
REFUSED_PREFIXES = ("/root", "/etc", "/var/lib", str(Path.home() / ".aws"), str(Path.home() / ".ssh"),
                    str(Path.home() / ".docker"), str(Path.home() / ".config"))
DEFAULT_SERVING_PORT = 8080
Runner = Callable[..., subprocess.CompletedProcess]


@hookimpl
def sagetwin_register_backends(register):
    register(LocalBackend)


@hookimpl
def sagetwin_doctor_checks() -> list:
    return doctor_checks()


# --------------------------------------------------------------------------- environment probes


def _run(cmd: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(cmd, 127, "", str(exc))


def docker_reachable(run: Runner = _run) -> tuple[bool, str]:
    if shutil.which("docker") is None:
        return False, "the docker CLI is not installed"
    result = run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=10)
    if result.returncode != 0:
        return False, "Docker not reachable (" + (result.stderr.strip().splitlines() or ["no answer"])[-1][:160] + ")"
    return True, f"Docker {result.stdout.strip()}"


@functools.lru_cache(maxsize=4)
def compose_command(run: Runner = _run) -> tuple[list[str] | None, str]:
    """As the SDK decides: ``docker compose`` if its version says v2, else ``docker-compose``.
    Cached per process: starting docker-compose v1 just to read its version takes half a second."""
    v2 = run(["docker", "compose", "version"])
    if v2.returncode == 0 and "v2" in v2.stdout:
        return ["docker", "compose"], v2.stdout.strip()
    if shutil.which("docker-compose"):
        v1 = run(["docker-compose", "version", "--short"])
        return ["docker-compose"], f"docker-compose {v1.stdout.strip()}"
    return None, "neither `docker compose` (v2) nor `docker-compose` is installed"


@dataclass(frozen=True)
class GpuInfo:
    usable: bool
    reason: str
    gpus: int = 0


def detect_gpu(run: Runner = _run, cdi_dirs: tuple[str, ...] = ("/etc/cdi", "/var/run/cdi")) -> GpuInfo:
    """An NVIDIA GPU Docker can use: nvidia-smi lists one and the engine has the nvidia runtime or CDI."""
    smi = run(["nvidia-smi", "--list-gpus"])
    gpus = sum(1 for line in smi.stdout.splitlines() if line.startswith("GPU ")) if smi.returncode == 0 else 0
    if gpus == 0:
        return GpuInfo(False, "no NVIDIA GPU (nvidia-smi lists none)")
    runtimes = run(["docker", "info", "--format", "{{json .Runtimes}}"])
    try:
        has_runtime = "nvidia" in json.loads(runtimes.stdout or "{}")
    except ValueError:
        has_runtime = False
    has_cdi = any(Path(d).is_dir() and any("nvidia" in p.name for p in Path(d).iterdir()) for d in cdi_dirs)
    if has_runtime or has_cdi:
        return GpuInfo(True, f"{gpus} NVIDIA GPU(s), Docker {'nvidia runtime' if has_runtime else 'CDI'}", gpus)
    return GpuInfo(False, f"{gpus} NVIDIA GPU(s) but Docker has no nvidia runtime or CDI spec "
                          "(install the NVIDIA Container Toolkit)", gpus)


# --------------------------------------------------------------------------- containers we start


def our_containers(image: str) -> set[str]:
    out = _run(["docker", "ps", "-aq", "--no-trunc", "--filter", f"ancestor={image}"])
    return set(out.stdout.split()) if out.returncode == 0 else set()


def container_report(container_ids: set[str], lines: int = 30) -> tuple[int | None, str]:
    """Exit code and log tail of the first container that failed (or of any, if none failed)."""
    chosen, code = None, None
    for cid in sorted(container_ids):
        inspected = _run(["docker", "inspect", "--format", "{{.State.ExitCode}}", cid])
        exit_code = int(inspected.stdout.strip()) if inspected.stdout.strip().isdigit() else None
        if chosen is None or (exit_code not in (None, 0) and code in (None, 0)):
            chosen, code = cid, exit_code
    if chosen is None:
        return None, ""
    logs = _run(["docker", "logs", "--tail", str(lines), chosen], timeout=30)
    return code, (logs.stdout + logs.stderr).strip()


def remove_containers(container_ids: set[str]) -> None:
    if container_ids:
        _run(["docker", "rm", "-f", "-v", *sorted(container_ids)], timeout=120)
    _run(["docker", "network", "rm", NETWORK])  # fails harmlessly while something still uses it


COMPOSE_DIR_LABEL = "com.docker.compose.project.working_dir"  # set by compose v1 and v2


def orphaned_containers(work_dir: Path, run: Runner = _run) -> list[str]:
    """Containers the SDK's compose started under our work dir whose `compose up` no longer runs:
    the Python process that owned them was killed outright (SIGKILL, a closed pipe) before it
    could remove them. Nobody can reach them through sagetwin any more."""
    out = run(["docker", "ps", "-a", "--no-trunc", "--format", f'{{{{.ID}}}}\t{{{{.Label "{COMPOSE_DIR_LABEL}"}}}}'])
    ours = [line.split("\t", 1) for line in out.stdout.splitlines() if "\t" in line] if out.returncode == 0 else []
    ours = [(cid, folder) for cid, folder in ours if folder.startswith(str(work_dir) + os.sep)]
    if not ours:
        return []
    running = run(["ps", "-ww", "-eo", "args="]).stdout.splitlines()  # -ww: never cut to the terminal width
    live = [args for args in running if "compose" in args and "<defunct>" not in args]
    return [cid for cid, folder in ours if not any(f"{folder}{os.sep}docker-compose.yaml" in args for args in live)]


def reap_orphans(work_dir: Path, reporter: Reporter) -> None:
    orphans = orphaned_containers(work_dir)
    if orphans:
        remove_containers(set(orphans))
        reporter.step(f"local: removed {len(orphans)} container(s) left by a sagetwin run that was killed")


def give_back_to_user(path: Path, image: str) -> None:
    """Containers write as root into mounted folders; chown what they wrote to the invoking user."""
    uid, gid = os.getuid(), os.getgid()
    if uid == 0 or not path.exists():
        return
    _run(["docker", "run", "--rm", "--network", "none", "-v", f"{path}:/target", "--entrypoint", "chown", image,
          "-R", f"{uid}:{gid}", "/target"], timeout=300)


# --------------------------------------------------------------------------- the backend


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
        self.work_dir = Path(work_dir or Path(tempfile.gettempdir()) / f"sagetwin-local-{os.getuid()}")
        self.build_images = build_images
        self._session: Any = None
        self._orphans_reaped = False

    @classmethod
    def availability(cls) -> Availability:
        ok, why = docker_reachable()
        if not ok:
            return Availability(False, why, "start Docker (e.g. `bash scripts/docker-engine.sh`) or use --backend "
                                            "process")
        compose, version = compose_command()
        if compose is None:
            return Availability(False, version, "install docker-compose or the docker compose plugin")
        return Availability(True, f"{why}, {version}")

    # ------------------------------------------------------------------ session
    @property
    def session(self) -> Any:
        """A LocalSession with its own region and credentials; nothing is read from or written to ~/.aws."""
        if self._session is None:
            import boto3

            _aws.import_sdk()
            from sagemaker.local import LocalSession

            boto = boto3.Session(region_name=LOCAL_REGION, aws_access_key_id="sagetwin-local",
                                 aws_secret_access_key="sagetwin-local")
            self.work_dir.mkdir(parents=True, exist_ok=True)
            session = LocalSession(boto_session=boto, default_bucket=LOCAL_BUCKET,
                                   sagemaker_config=_aws.SDK_CONFIG)
            session.config = {"local": {"local_code": True, "container_root": str(self.work_dir)}}
            self._session = session
        return self._session

    def _reap_orphans_once(self, reporter: Reporter) -> None:
        """Containers of killed runs go at this backend's first fit or deploy; later ones need no look."""
        if not self._orphans_reaped:
            reap_orphans(self.work_dir, reporter)
            self._orphans_reaped = True

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
        if chosen == "local_gpu" and compose_command()[0] == ["docker-compose"]:
            raise BackendUnavailableError(
                "local_gpu needs docker compose v2: the SDK adds a `deploy:` key that docker-compose v1 rejects.",
                "install the docker compose v2 plugin, or pass instance_type='local' to train on the CPU.")
        return chosen

    def stage(self, path: Path) -> Path:
        """Inputs under folders the SDK refuses are hard-linked (or copied) into the work dir, once."""
        resolved = path.resolve()
        if not str(resolved).startswith(REFUSED_PREFIXES):
            return resolved
        target = self.work_dir / "inputs" / _aws.folder_digest(resolved)
        if not target.exists():
            tmp = target.with_name(target.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            if resolved.is_file():
                tmp.mkdir(parents=True)
                images._link_or_copy(str(resolved), str(tmp / resolved.name))
            else:
                shutil.copytree(resolved, tmp, copy_function=images._link_or_copy, symlinks=False)
            tmp.rename(target)
        return target

    # ------------------------------------------------------------------ training
    def fit(self, spec: TrainingSpec, reporter: Reporter) -> TrainingResult:
        session = self.session  # imports the SDK quietly, before the class import below
        self._reap_orphans_once(reporter)
        stack = resolve_stack(spec.transformers_version, spec.pytorch_version, spec.py_version, scope="training")
        image, gaps = images.choose_image("training", stack, spec.options.get("image_uri") or self.image_uri,
                                          reporter, build_missing=self.build_images)
        for gap in gaps:
            reporter.step(f"parity: {gap.render()}")
        instance_type = self.choose_instance_type(spec.instance_type, reporter)
        inputs = {}
        for channel, uri in spec.inputs.items():
            path = local_path(uri, f"input channel {channel!r}")
            if not path.exists():
                raise ConfigurationError(f"input channel {channel!r} points to {path}, which does not exist.",
                                         "check the path passed to fit().")
            inputs[channel] = self.stage(path).as_uri()
        from sagemaker.huggingface import HuggingFace

        output = self.work_dir / "runs" / spec.job_name
        output.mkdir(parents=True, exist_ok=True)
        estimator = HuggingFace(
            entry_point=spec.entry_point, source_dir=str(spec.source_dir), image_uri=image,
            instance_type=instance_type, instance_count=spec.instance_count, role=LOCAL_ROLE,
            transformers_version=stack.transformers, pytorch_version=stack.pytorch, py_version=stack.py,
            hyperparameters=dict(spec.hyperparameters), environment=dict(spec.environment) or None,
            sagemaker_session=session, output_path=output.as_uri(), max_run=spec.max_run,
        )
        before = our_containers(image)
        reporter.step(f"local: training job {spec.job_name} in {spec.instance_count} container(s) of {image}")
        started = time.monotonic()
        failure: BaseException | None = None
        try:
            with _aws.interrupts_kept():
                estimator.fit(inputs, job_name=spec.job_name, wait=True, logs=True)
        except BaseException as exc:  # KeyboardInterrupt included: containers are removed below
            failure = exc
        finally:
            mine = our_containers(image) - before
            code, tail = container_report(mine) if failure is not None else (None, "")
            remove_containers(mine)
            give_back_to_user(output, image)
        if failure is not None:
            if isinstance(failure, Exception):
                raise TrainingError(
                    f"training job {spec.job_name} failed in Docker"
                    + (f": the container exited with code {code}" if code is not None else f": {failure}") + ".",
                    "fix the error in the log below; `sagetwin run --backend process` reproduces it without Docker.",
                    exit_code=code, log_tail=tail,
                ) from failure
            raise failure
        duration = time.monotonic() - started
        model_data = estimator.model_data
        output_tar = local_path(model_data, "model_data").with_name("output.tar.gz")
        return TrainingResult(
            job_name=spec.job_name, backend=self.name, model_data=model_data,
            metrics=metrics_from_archive(output_tar), output_data=output_tar.as_uri(), duration_s=duration,
            details={"image": image, "instance_type": instance_type, "parity": [g.render() for g in gaps]},
        )

    # ------------------------------------------------------------------ serving
    def deploy(self, spec: DeploySpec, reporter: Reporter) -> LocalEndpoint:
        session = self.session  # imports the SDK quietly, before the class import below
        self._reap_orphans_once(reporter)
        from sagemaker.huggingface import HuggingFaceModel

        stack = resolve_stack(spec.transformers_version, spec.pytorch_version, spec.py_version, scope="inference")
        image, gaps = images.choose_image("inference", stack, spec.options.get("image_uri") or
                                          self.inference_image_uri, reporter, build_missing=self.build_images)
        for gap in gaps:
            reporter.step(f"parity: {gap.render()}")
        archive = local_path(spec.model_data, "model_data")
        if not archive.is_file():
            raise ConfigurationError(f"model_data {archive} does not exist.", "pass the model.tar.gz from fit().")
        port = choose_port(spec.port, "127.0.0.1") if spec.port else (
            DEFAULT_SERVING_PORT if port_is_free(DEFAULT_SERVING_PORT) else choose_port(None))
        session.config["local"]["serving_port"] = port
        instance_type = self.choose_instance_type(spec.instance_type, reporter)
        # One MMS worker by default (the DLC starts one per vCPU): on a laptop they would only compete
        # for the same cores while loading. SAGEMAKER_MODEL_SERVER_WORKERS in env= overrides it.
        env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", **spec.environment}
        model = HuggingFaceModel(
            model_data=self.stage(archive).as_uri(), image_uri=image, role=LOCAL_ROLE, env=env,
            transformers_version=stack.transformers, pytorch_version=stack.pytorch, py_version=stack.py,
            sagemaker_session=session, name=spec.endpoint_name,
            # with a code location the SDK does not resolve (and create) a default S3 bucket via STS
            code_location=f"s3://{LOCAL_BUCKET}/{spec.endpoint_name}",
        )
        before = our_containers(image)
        reporter.step(f"local: serving container from {image} on http://127.0.0.1:{port}")
        started = time.monotonic()
        endpoint = LocalEndpoint(spec.endpoint_name, port, session)
        try:
            with _aws.interrupts_kept(), _fast_health_check(image, before, spec.startup_timeout or 600.0):
                # Local mode serves synchronously inside CreateEndpoint (with the health check above);
                # wait=True would only add the SDK's 30 s poll sleep before its first DescribeEndpoint.
                model.deploy(initial_instance_count=spec.initial_instance_count, instance_type=instance_type,
                             endpoint_name=spec.endpoint_name, wait=False)
        except BaseException as exc:
            endpoint.containers = our_containers(image) - before
            code, tail = container_report(endpoint.containers)
            endpoint.delete()
            if isinstance(exc, Exception):
                raise EndpointError(
                    f"endpoint {spec.endpoint_name} did not start: {exc}"
                    + (f" (container exit code {code})" if code is not None else ""),
                    "read the container log below; for large models raise startup_timeout.",
                    details="Last lines of the serving container's log:\n"
                            + "\n".join("  | " + line for line in tail.splitlines()),
                ) from exc
            raise
        endpoint.containers = our_containers(image) - before
        reporter.step(f"local: model loaded and /ping answered after {time.monotonic() - started:.1f}s")
        return endpoint


class LocalEndpoint(LocalHttpEndpoint):
    """A local-mode endpoint: the serving container on 127.0.0.1:port."""

    def __init__(self, name: str, port: int, session: Any) -> None:
        super().__init__(name, "127.0.0.1", port, log_hint="see `docker logs` of the serving container.")
        self.session = session
        # what deploying started, removed on delete; nothing else: other endpoints may share the image
        self.containers: set[str] = set()

    def _release(self) -> None:
        """Remove the serving container first (MMS ignores SIGTERM, so compose's graceful stop would
        wait 10 s for nothing), then let the SDK's local client forget the endpoint and its compose run."""
        remove_containers(self.containers)
        _aws.delete_endpoint_resources(self.session.sagemaker_client, self.name, missing_ok=lambda exc: True)
        _run(["docker", "network", "rm", NETWORK])


@contextlib.contextmanager
def _fast_health_check(image: str, before: set[str], timeout: float) -> Iterator[None]:
    """Replace the SDK's health check (a /ping every 5 s, capped at 120 s) with one that follows the
    serving container's log until a worker loaded the model (``local_serving.wait_for_model``)."""
    from sagemaker.local import entities

    threads_before = local_serving.compose_threads()

    def wait(serving_port: int) -> None:
        ours = local_serving.compose_threads() - threads_before  # started just before this call
        local_serving.adopt(ours)
        local_serving.wait_for_model(
            find_containers=lambda: sorted(our_containers(image) - before),
            compose_running=lambda: any(thread.is_alive() for thread in ours),
            serving_port=serving_port, timeout=timeout)

    original = entities._wait_for_serving_container
    entities._wait_for_serving_container = wait
    try:
        yield
    finally:
        entities._wait_for_serving_container = original


def doctor_checks() -> list:
    """Docker, compose, GPU, images and their parity, disk space: each problem with its fix."""
    from sagetwin.core.check import CheckItem

    items = []
    ok, why = docker_reachable()
    items.append(CheckItem("local: Docker engine reachable", ok, why,
                           "start one: `bash scripts/docker-engine.sh` (installs Debian's docker.io if needed)"))
    if not ok:
        return items
    compose, version = compose_command()
    items.append(CheckItem("local: docker compose", compose is not None, version,
                           "install docker-compose (Debian) or the docker compose v2 plugin"))
    if compose == ["docker-compose"]:
        items.append(CheckItem("local: GPU containers need compose v2", None,
                               "docker-compose v1 rejects the `deploy:` key the SDK writes for local_gpu"))
    gpu = detect_gpu()
    items.append(CheckItem("local: GPU for containers", True,
                           gpu.reason + ("; training uses local_gpu" if gpu.usable else "; training runs on the CPU")))
    for scope in ("training", "inference"):
        rec = images.recipe(scope)
        dlc = images.dlc_uri(scope, rec.stack)
        if images.image_exists(dlc):
            items.append(CheckItem(f"local: {scope} image", True, f"the real DLC {dlc} is present (exact parity)"))
            continue
        present = images.image_exists(rec.tag)
        gaps = "; ".join(g.render() for g in rec.parity()) or "exact"
        items.append(CheckItem(f"local: {scope} image", present,
                               f"{rec.tag} ({'present' if present else 'not built'}); parity: {gaps}",
                               "run `sagetwin image build` (a few minutes, no registry needed)"))
    orphans = orphaned_containers(LocalBackend().work_dir)
    items.append(CheckItem("local: no containers left by killed runs", not orphans,
                           f"{len(orphans)} left: {', '.join(c[:12] for c in orphans)}" if orphans else "none",
                           "the next local fit or deploy removes them, or: docker rm -f " + " ".join(orphans)))
    root = _run(["docker", "info", "--format", "{{.DockerRootDir}}"]).stdout.strip() or "/var/lib/docker"
    free_gb = shutil.disk_usage(root if Path(root).exists() else "/").free / 1e9
    items.append(CheckItem("local: disk space for images", free_gb >= 10, f"{free_gb:.0f} GB free under {root}",
                           "free at least 10 GB (`docker image prune`; old images: `docker images 'sagetwin/*'`)"))
    return items
