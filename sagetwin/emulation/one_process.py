"""What a backend that runs the training script as one process of this machine (``process``,
in-process plugins) cannot give it, refused before anything is laid out: several hosts, and the
launchers SageMaker's PyTorch toolkit starts for ``distribution=``."""

from __future__ import annotations

from sagetwin.core.errors import ConfigurationError
from sagetwin.core.spec import TrainingSpec, enabled_launchers


def refuse_what_one_process_cannot_run(spec: TrainingSpec) -> None:
    if spec.instance_count != 1:
        raise ConfigurationError(
            f"this backend runs one instance; instance_count={spec.instance_count} was asked for.",
            "use instance_count=1 here, or --backend local to test multi-instance training in Docker.",
        )
    launchers = enabled_launchers(spec.distribution)
    if launchers:
        raise ConfigurationError(
            f"this backend runs the script itself, without SageMaker's launcher for distribution={launchers[0]!r} "
            "(torchrun/mpirun with RANK, WORLD_SIZE, MASTER_ADDR set).",
            "run it on --backend local, whose images launch it as the cloud's PyTorch toolkit does, or leave "
            "distribution out here.",
        )
