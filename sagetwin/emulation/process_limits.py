"""What a backend that runs the training script as processes of this machine (``process``,
in-process plugins) cannot give it, refused before anything is laid out: several hosts without
namespaces of their own (each host needs its own /opt/ml and the ``algo-N`` names), and the
launchers it does not run (MPI, SageMaker's smddprun and smdistributed)."""

from __future__ import annotations

from sagetwin.core.errors import ConfigurationError
from sagetwin.core.spec import TrainingSpec, enabled_launchers

RUN_HERE = ("torch_distributed",)  # torchrun, started as SageMaker's PyTorch toolkit starts it
MAX_HOSTS = 16  # each host is a process with its own copy of the code and data on this one machine


def refuse_what_processes_cannot_run(spec: TrainingSpec, *, own_namespaces: bool, gpus: int = 0) -> None:
    if not 1 <= spec.instance_count <= MAX_HOSTS:
        raise ConfigurationError(
            f"instance_count={spec.instance_count}: this backend runs 1 to {MAX_HOSTS} hosts, each a process here.",
            "use fewer hosts here (the code is the same for more), or --backend sagemaker for the real count.")
    if 0 < gpus < spec.instance_count:
        raise ConfigurationError(
            f"instance_count={spec.instance_count} hosts cannot each have GPUs of their own on this machine's {gpus}.",
            f"use instance_count={gpus} or fewer here, or hide the GPUs (CUDA_VISIBLE_DEVICES=) to train on the CPU.")
    if spec.instance_count != 1 and not own_namespaces:
        raise ConfigurationError(
            f"instance_count={spec.instance_count} runs one process per host here, each seeing its own /opt/ml and "
            "the hosts' names (algo-1, ...) in namespaces of its own, which this kernel (or -o paths=mapped) does "
            "not allow.",
            "use instance_count=1 here, or --backend local to run the hosts as containers.",
        )
    if spec.container_entrypoint and not own_namespaces:
        raise ConfigurationError(
            f"the job's ContainerEntrypoint ({' '.join(spec.container_entrypoint)}) uses SageMaker's /opt/ml paths "
            "literally, which needs namespaces of its own here; this kernel (or -o paths=mapped) does not allow them.",
            "leave out -o paths=mapped, or run sagetwin where the kernel allows user and mount namespaces.")
    launchers = [name for name in enabled_launchers(spec.distribution) if name not in RUN_HERE]
    if launchers:
        raise ConfigurationError(
            f"this backend does not run SageMaker's launcher for distribution={launchers[0]!r} (MPI, smddprun or "
            "smdistributed, in SageMaker's own containers).",
            "test the script with distribution={'torch_distributed': {'enabled': True}}, which runs here under "
            "torchrun as the PyTorch toolkit starts it, and keep this setting for the run on SageMaker.",
        )
