"""A ``process`` job's hosts: their names, each host's run folder, and the command each runs — the
entry point itself, or (``distribution={"torch_distributed": ...}``) torchrun as SageMaker's
PyTorch toolkit starts it on every host, with the job's own rendezvous port on loopback."""

from __future__ import annotations

import os
from pathlib import Path

from sagetwin.backends.process.audit_files import audit_env
from sagetwin.core.spec import TrainingSpec, enabled_launchers
from sagetwin.emulation.contract import OPT_ML, PreparedRun
from sagetwin.emulation.debugging import debugger_env


def host_names(count: int) -> list[str]:
    return [f"algo-{index}" for index in range(1, count + 1)]


def host_root(run_dir: Path, hosts: list[str], host: str) -> Path:
    """algo-1's /opt/ml is the run's own (its model is the job's); the others' sit beside it."""
    return run_dir / "opt_ml" if host == hosts[0] else run_dir / "hosts" / host / "opt_ml"


def gpu_slices(hosts: list[str], gpus: int) -> dict[str, dict[str, str]]:
    """Each host's own GPUs (``CUDA_VISIBLE_DEVICES``) when several hosts share this machine's:
    an instance does not see another's, and NCCL refuses one GPU in two ranks."""
    if len(hosts) < 2 or gpus == 0:
        return {host: {} for host in hosts}
    each = gpus // len(hosts)
    return {host: {"CUDA_VISIBLE_DEVICES": ",".join(str(index * each + g) for g in range(each))}
            for index, host in enumerate(hosts)}


def host_command(spec: TrainingSpec, entry: list[str], python: str, args: list[str], hosts: list[str], host: str,
                 port: int, gpus: int = 0) -> list[str]:
    """What ``host`` runs: ``entry`` (the script as this backend starts it) with its arguments, or,
    for torch_distributed, ``torchrun --nnodes N --nproc_per_node P --master_addr algo-1
    --master_port PORT --node_rank R script args`` (the toolkit's command, with a port of the job's
    own: every host shares this machine's loopback); or the job's ``ContainerEntrypoint`` and
    ``ContainerArguments``, which replace the toolkit altogether."""
    if spec.container_entrypoint:
        return [*spec.container_entrypoint, *spec.container_arguments]
    if "torch_distributed" not in enabled_launchers(spec.distribution):
        return entry + args
    return [python, "-m", "torch.distributed.run", "--nnodes", str(len(hosts)),
            "--nproc_per_node", str(max(1, gpus // len(hosts))), "--master_addr", hosts[0], "--master_port", str(port),
            "--node_rank", str(hosts.index(host)), spec.entry_point, *args]


def launcher_env(spec: TrainingSpec, hosts: list[str], port: int) -> dict[str, str]:
    """What the toolkit exports before it launches: MASTER_ADDR and MASTER_PORT."""
    return {"MASTER_ADDR": hosts[0], "MASTER_PORT": str(port)} if spec.distribution else {}


def hosts_summary(hosts: list[str], first_command: list[str]) -> str:
    """How the job's start line names its hosts and launcher ("" for one host run plainly)."""
    text = f" on {len(hosts)} hosts, {', '.join(hosts)}" if len(hosts) > 1 else ""
    return text + (", launched by torchrun" if first_command[1:3] == ["-m", "torch.distributed.run"] else "")


def job_env(run: PreparedRun, seen_at_opt_ml: bool, extra: dict[str, str], audit_record: str | None
            ) -> dict[str, str]:
    """A host's environment: this process's, the run's ``SM_*``, ``extra``, the code on PYTHONPATH,
    the breakpoint hook, and (``sagetwin check``) the audit that keeps it off the network."""
    env = {**os.environ, **run.env, **extra}
    code_dir = f"{OPT_ML}/code" if seen_at_opt_ml else str(run.folder.code_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [code_dir, os.environ.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(debugger_env(env))
    if audit_record:
        env.update(audit_env(env, audit_record))
    return env


def container_path(bin_dir: Path, python: str) -> dict[str, str]:
    """A job with its own entrypoint finds the stack's Python as a container has it: ``python3``,
    ``python``, ``pip3`` and ``pip`` first on PATH (pip as ``python -m pip`` of that Python)."""
    bin_dir.mkdir(mode=0o700)
    for name in ("python3", "python"):
        (bin_dir / name).symlink_to(python)
    for name in ("pip3", "pip"):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec "{python}" -m pip "$@"\n')
        script.chmod(0o700)
    return {"PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "/usr/bin:/bin")])}
