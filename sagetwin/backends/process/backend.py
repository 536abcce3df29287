"""The ``process`` backend: the SageMaker container contract emulated in a subprocess.

No Docker. Training runs the entry point with this Python under an ``/opt/ml``-shaped run
folder and the toolkit's ``SM_*`` environment; serving runs the inference toolkit's own
handler behind a 127.0.0.1 server. The fastest inner loop: a script that passes here runs
unchanged in a container.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sagetwin.backends.process import hosts as job_hosts
from sagetwin.backends.process import opt_ml
from sagetwin.backends.process.drift import drift, drift_fix
from sagetwin.backends.process.model_server import (
    ProcessEndpoint,
    abandon_server,
    served_paths,
    server_command,
    start_model_server,
)
from sagetwin.backends.process.stack_env import stack_python
from sagetwin.core.backend import Check
from sagetwin.core.errors import ConfigurationError, EndpointError, TrainingError, log_excerpt
from sagetwin.core.liveness import running_in
from sagetwin.core.paths import PRIVATE, home_dir, inside, private_folders
from sagetwin.core.progress import Reporter
from sagetwin.core.spec import DeploySpec, TrainingResult, TrainingSpec
from sagetwin.core.versions import Stack, resolve_stack
from sagetwin.emulation import contract
from sagetwin.emulation.artifacts import (
    local_input,
    local_path,
    package_outputs,
    read_metrics,
    require_model_files,
    unpack_model,
)
from sagetwin.emulation.datasets_compat import readable_by
from sagetwin.emulation.debugging import debugger_env
from sagetwin.emulation.dlc_packages import dlc_datasets_version
from sagetwin.emulation.model_sources import served_model
from sagetwin.emulation.process_limits import refuse_what_processes_cannot_run
from sagetwin.emulation.processes import (
    choose_port,
    free_port,
    tail_of,
    wait_for_port_file,
    wait_until_healthy,
)
from sagetwin.emulation.router_server import CONTAINER_SETTINGS, VERSION_ENV
from sagetwin.emulation.several_hosts import HostRun, run_hosts

HOST = "127.0.0.1"
ENVIRONMENTS = ("host", "stack")
STARTUP_TIMEOUT_S = 300.0


def server_environment(spec: DeploySpec, environment: dict[str, str]) -> dict[str, str]:
    """This program's environment (PATH, caches) with the model's over it; a TGI or TEI server takes
    its settings from the model's only, as the container does, and the version its image names."""
    inherited = CONTAINER_SETTINGS if spec.server != "inference-toolkit" else ()
    env = {name: value for name, value in os.environ.items() if name not in inherited}
    env.update(environment)
    if spec.server_version:
        env[VERSION_ENV] = spec.server_version
    env.update(debugger_env(env))
    return env


class ProcessBackend:
    """Training in a subprocess under the container contract; serving on 127.0.0.1."""

    name = "process"
    description = "no Docker: SageMaker's container contract emulated in a local subprocess"
    auto_priority = 10

    def __init__(self, work_dir: str | os.PathLike[str] | None = None, python: str | None = None,
                 audit_record: str | None = None, env: str = "host", paths: str = "auto") -> None:
        if env not in ENVIRONMENTS:
            raise ConfigurationError(f"the process backend runs with env 'host' or 'stack', not {env!r}.",
                                     "pass -o env=stack to run in the stack's own packages, or leave it out.")
        self.work_dir = Path(work_dir).resolve() if work_dir else home_dir()
        self.python = python or sys.executable
        self.env = env
        self.audit_record = audit_record  # `sagetwin check`: record opened files, block network
        self.paths = opt_ml.check_setting(paths)  # the job's /opt/ml: its own namespace, or mapped

    def _python(self, stack: Stack, reporter: Reporter) -> str:
        """This Python, or (env=stack) the stack's cached environment."""
        return stack_python(stack, reporter) if self.env == "stack" else self.python

    def _stack_inputs(self, spec: TrainingSpec, stack: Stack) -> TrainingSpec:
        """Saved datasets made readable by the stack's datasets when the job runs in the stack's env."""
        version = dlc_datasets_version(stack.transformers, stack.pytorch, stack.py) if self.env == "stack" else None
        if not version:
            return spec
        inputs = {channel: str(readable_by(local_input(uri, channel), version)) for channel, uri in spec.inputs.items()}
        return dataclasses.replace(spec, inputs=inputs)

    @classmethod
    def availability(cls) -> Check:
        return Check(True, "runs with this Python; no Docker needed")

    def fit(self, spec: TrainingSpec, reporter: Reporter) -> TrainingResult:
        base = Path(local_path(spec.output_path, "output_path")) if spec.output_path else private_folders(
            self.work_dir, "runs")
        run_dir = inside(base, spec.job_name)
        if run_dir.exists():  # SageMaker refuses a second job of one name; its model would mix with the first's
            raise ConfigurationError(
                f"Training job names must be unique within an AWS account and region, and a training job with "
                f"name {spec.job_name} already exists (its run folder is {run_dir}).",
                f"pick another job_name, or delete {run_dir} first.")
        with disk_full_named(run_dir, "preparing the run folder"):
            run_dir.mkdir(mode=PRIVATE, parents=True)
        with running_in(run_dir):  # `sagetwin runs prune` leaves it alone while this process lives, paused or not
            return self._fit(spec, run_dir, reporter)

    def _fit(self, spec: TrainingSpec, run_dir: Path, reporter: Reporter) -> TrainingResult:
        stack = resolve_stack(spec.transformers_version, spec.pytorch_version, spec.py_version, scope="training")
        python = self._python(stack, reporter)
        differences = drift(stack) if self.env == "host" else []
        if differences:
            reporter.step("process: this host differs from the job's stack: "
                          + "; ".join(d.render() for d in differences))
        # `sagetwin check` tells the paths a script opens from the ones SM_* named: it keeps them apart
        seen_at_opt_ml = opt_ml.at_opt_ml("mapped" if self.audit_record else self.paths, reporter, run_dir.parent)
        with disk_full_named(run_dir, "preparing the run folder"):
            runs = self._host_runs(self._stack_inputs(spec, stack), run_dir, python, seen_at_opt_ml, reporter)
        folder = runs[0][0].folder  # algo-1's: the job's model and output
        started = time.monotonic()
        try:
            exit_code, tail = run_hosts([run for _, run in runs], reporter=reporter, log_path=run_dir / "training.log")
        finally:
            for prepared, _ in runs:
                prepared.folder.remove_channel_copies()
        duration = time.monotonic() - started
        if exit_code != 0:
            raise TrainingError(
                f"training job {spec.job_name} failed: {spec.entry_point} exited with code {exit_code} "
                f"after {duration:.1f}s (full log: {run_dir / 'training.log'}).",
                drift_fix(differences, stack) if differences else (
                    f"the disk holding {run_dir} is full: {DISK_FULL_FIX}" if "No space left on device" in tail
                    else "fix the error shown in the log below and run again."),
                exit_code=exit_code, log_tail=tail,
            )
        if not any(folder.model_dir.iterdir()):
            reporter.step(f"warning: {spec.entry_point} wrote nothing to SM_MODEL_DIR ({folder.model_dir}); "
                          "model.tar.gz will be empty and cannot be served")
        with disk_full_named(run_dir, "packing model.tar.gz and output.tar.gz"):
            model_data, output_data = package_outputs(folder.model_dir, folder.output_data_dir, run_dir / "output")
        return TrainingResult(
            job_name=spec.job_name, backend=self.name, model_data=model_data,
            metrics=read_metrics(folder.output_data_dir), output_data=output_data, duration_s=duration,
            details={"run_dir": str(run_dir), "log": str(run_dir / "training.log")},
        )

    def _host_runs(self, spec: TrainingSpec, run_dir: Path, python: str, seen_at_opt_ml: bool, reporter: Reporter
                   ) -> list[tuple[contract.PreparedRun, HostRun]]:
        """Each host's run folder, environment and command (one host unless ``instance_count``)."""
        gpus = contract.count_gpus()
        refuse_what_processes_cannot_run(spec, own_namespaces=seen_at_opt_ml, gpus=gpus)
        hosts = job_hosts.host_names(spec.instance_count)
        port, slices = free_port() if spec.distribution else 0, job_hosts.gpu_slices(hosts, gpus)
        entry, runs = self._entry_command(python, spec.entry_point), []
        for host in hosts:
            run = contract.prepare_run(spec, job_hosts.host_root(run_dir, hosts, host), at_opt_ml=seen_at_opt_ml,
                                       hosts=hosts, current_host=host, num_gpus=gpus)
            path = job_hosts.container_path(run.folder.root.parent / "bin", python) if spec.container_entrypoint else {}
            env = job_hosts.job_env(run, seen_at_opt_ml, {**job_hosts.launcher_env(spec, hosts, port), **slices[host],
                                                          **path}, self.audit_record)
            cmd = job_hosts.host_command(spec, entry, python, run.args, hosts, host, port, gpus)
            namespace = opt_ml.namespace(run.folder.root, run.folder.root.parent / "container", hosts, host,
                                         python) if seen_at_opt_ml else ()
            runs.append((run, HostRun(host, cmd, env, run.folder.code_dir, namespace)))
        first = runs[0][0]
        for note in first.notes:
            reporter.step(f"process: {note}")
        where = f"{first.folder.root}" + (" (seen at /opt/ml)" if seen_at_opt_ml else "")
        reporter.step(f"process: running {spec.entry_point} {' '.join(first.args)} in {where}"
                      + job_hosts.hosts_summary(hosts, runs[0][1].cmd))
        return runs

    def _entry_command(self, python: str, entry_point: str) -> list[str]:
        if entry_point.endswith(".sh"):
            return ["/bin/sh", entry_point]
        if self.audit_record:
            return [python, "-m", "sagetwin.backends.process.audit", self.audit_record, entry_point]
        return [python, entry_point]

    def deploy(self, spec: DeploySpec, reporter: Reporter) -> ProcessEndpoint:
        archive, environment = served_model(spec.model_data, spec.environment, reporter.step, spec.server)
        require_model_files(archive)
        requested = choose_port(spec.port, HOST) if spec.port else 0  # 0: the server binds any free port
        endpoint_dir = inside(private_folders(self.work_dir, "endpoints"), spec.endpoint_name)
        private_folders(endpoint_dir.parent, endpoint_dir.name)
        stack = resolve_stack(spec.transformers_version, spec.pytorch_version, spec.py_version, scope="inference")
        model_dir = unpack_model(archive, endpoint_dir / "model",
                                 cache_dir=private_folders(self.work_dir, "unpacked-models"))
        log_path, port_file = endpoint_dir / "server.log", endpoint_dir / "port"
        port_file.unlink(missing_ok=True)
        env = server_environment(spec, environment)
        python = self._python(stack, reporter)
        # the model at /opt/ml/model where the kernel allows it, as in SageMaker's container
        served_at, folders = served_paths(endpoint_dir, model_dir, opt_ml.at_opt_ml(
            "mapped" if self.audit_record else self.paths, reporter, endpoint_dir))
        cmd = server_command(python, spec.server, served_at, HOST, requested, port_file)
        timeout = spec.startup_timeout or STARTUP_TIMEOUT_S
        started = time.monotonic()
        proc = start_model_server(cmd, env, port_file, log_path, folders, requested, timeout, reporter,
                                  warm=self.audit_record is None and spec.server == "inference-toolkit")
        try:
            port = wait_for_port_file(port_file, timeout=max(1.0, timeout - (time.monotonic() - started)),
                                      alive=lambda: proc.poll() is None)
        except BaseException:
            abandon_server(proc, folders)
            raise
        if port is None:
            abandon_server(proc, folders)
            raise EndpointError(
                f"endpoint {spec.endpoint_name} failed to start: the model server "
                + (f"exited with code {proc.returncode}" if proc.returncode is not None
                   else f"did not listen within {timeout:.0f}s") + ".",
                "read the server log below" + (f"; port {requested} may have been taken meanwhile"
                                               if requested else "") + ".",
                details=log_excerpt("the server log", tail_of(log_path)),
            )
        reporter.step(f"process: model server listening on http://{HOST}:{port}")
        endpoint = ProcessEndpoint(spec.endpoint_name, HOST, port, proc, folders, spec.invocation_timeout)
        try:
            healthy = wait_until_healthy(HOST, port, timeout=max(1.0, timeout - (time.monotonic() - started)),
                                         alive=lambda: proc.poll() is None)
        except BaseException:
            endpoint.delete()
            raise
        if not healthy:
            code = proc.poll()
            endpoint.delete()
            why = (f"the model server exited with code {code}" if code is not None
                   else f"/ping did not answer 200 within {timeout:.0f}s")
            raise EndpointError(
                f"endpoint {spec.endpoint_name} failed to start: {why}.",
                "read the server log below; for slow-loading models raise startup_timeout.",
                details=log_excerpt("the server log", tail_of(log_path)),
            )
        reporter.step(f"process: endpoint answered /ping after {time.monotonic() - started:.1f}s")
        return endpoint


DISK_FULL_FIX = ("free some space (`sagetwin runs prune` removes old run folders), or pass output_path= (or "
                 "set SAGETWIN_HOME to) a folder on a larger disk.")


@contextlib.contextmanager
def disk_full_named(run_dir: Path, doing: str) -> Iterator[None]:
    """A full disk is named as such, with the way out, and the half-written run folder removed."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        shutil.rmtree(run_dir, ignore_errors=True)
        free = shutil.disk_usage(run_dir.parent).free if run_dir.parent.exists() else 0
        raise ConfigurationError(f"no space left on the device holding {run_dir.parent} ({free / 1e6:.1f} MB free) "
                                 f"while {doing}; the run folder was removed.", DISK_FULL_FIX) from None
