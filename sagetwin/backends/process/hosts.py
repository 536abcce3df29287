"""A ``process`` job's hosts: their names, each host's run folder, and the command each runs — the
entry point itself, or (``distribution={"torch_distributed": ...}``) torchrun as SageMaker's
PyTorch toolkit starts it on every host, with the job's own rendezvous port on loopback."""

from __future__ import annotations

from pathlib import Path

from sagetwin.core.spec import TrainingSpec, enabled_launchers
from sagetwin.emulation.contract import count_gpus


def host_names(count: int) -> list[str]:
    return [f"algo-{index}" for index in range(1, count + 1)]


def host_root(run_dir: Path, hosts: list[str], host: str) -> Path:
    """algo-1's /opt/ml is the run's own (its model is the job's); the others' sit beside it."""
    return run_dir / "opt_ml" if host == hosts[0] else run_dir / "hosts" / host / "opt_ml"


def host_command(spec: TrainingSpec, entry: list[str], python: str, args: list[str], hosts: list[str], host: str,
                 port: int) -> list[str]:
    """What ``host`` runs: ``entry`` (the script as this backend starts it) with its arguments, or,
    for torch_distributed, ``torchrun --nnodes N --nproc_per_node P --master_addr algo-1
    --master_port PORT --node_rank R script args`` (the toolkit's command, with a port of the job's
    own: every host shares this machine's loopback)."""
    if "torch_distributed" not in enabled_launchers(spec.distribution):
        return entry + args
    return [python, "-m", "torch.distributed.run", "--nnodes", str(len(hosts)),
            "--nproc_per_node", str(max(1, count_gpus())), "--master_addr", hosts[0], "--master_port", str(port),
            "--node_rank", str(hosts.index(host)), spec.entry_point, *args]


def launcher_env(spec: TrainingSpec, hosts: list[str], port: int) -> dict[str, str]:
    """What the toolkit exports before it launches: MASTER_ADDR and MASTER_PORT."""
    return {"MASTER_ADDR": hosts[0], "MASTER_PORT": str(port)} if spec.distribution else {}


def hosts_summary(hosts: list[str], first_command: list[str]) -> str:
    """How the job's start line names its hosts and launcher ("" for one host run plainly)."""
    text = f" on {len(hosts)} hosts, {', '.join(hosts)}" if len(hosts) > 1 else ""
    return text + (", launched by torchrun" if first_command[1:3] == ["-m", "torch.distributed.run"] else "")
