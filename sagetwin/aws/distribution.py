"""The SDK's ``distribution`` settings of a training job, as they reach CreateTrainingJob (in its
hyperparameters), checked for what runs offline: SageMaker's own smdistributed libraries do not."""

from __future__ import annotations

from typing import Any

from sagetwin.aws.replies import Reply, service_error
from sagetwin.emulation.contract import decode_hyperparameters

SMDDP = "sagemaker_distributed_dataparallel_enabled"  # distribution={"smdistributed": {"dataparallel": ...}}
SMMP = "mp_parameters"  # distribution={"smdistributed": {"modelparallel": ...}}
# The launchers SageMaker's PyTorch toolkit picks from the job's hyperparameters (the SDK writes them).
LAUNCHERS = {
    "sagemaker_torch_distributed_enabled": "torch_distributed",
    "sagemaker_pytorch_ddp_enabled": "pytorchddp",
    "sagemaker_mpi_enabled": "mpi",
}


def distribution_refused(request: dict[str, Any]) -> Reply | None:
    """smdistributed (data or model parallel) refused clearly: a GPU-only library of SageMaker's
    own containers, which no offline backend has."""
    hyperparameters = decode_hyperparameters(request.get("HyperParameters") or {})
    used = [name for name, on in (("dataparallel", hyperparameters.get(SMDDP) in (True, "true", "True")),
                                  ("modelparallel", SMMP in hyperparameters)) if on]
    if not used:
        return None
    return service_error(
        "ValidationException",
        f"distribution={{'smdistributed': {{'{used[0]}': ...}}}} uses SageMaker's smdistributed library, which runs "
        "only on GPU instances in SageMaker's own training containers and is not emulated offline. The Hugging Face "
        "examples fall back to PyTorch DDP when smdistributed is absent: test with distribution={'torch_distributed': "
        "{'enabled': True}} (or 'pytorchddp') and instance_count=2 on --backend local, and keep smdistributed for the "
        "run on SageMaker itself.")


def distribution_of(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The ``distribution=`` a CreateTrainingJob request was made from, taken out of its decoded
    hyperparameters: the backend that runs the job writes them again, as the SDK does."""
    found: dict[str, Any] = {}
    for name, key in LAUNCHERS.items():
        if hyperparameters.pop(name, None) in (True, "true", "True"):
            found[key] = {"enabled": True}
    hyperparameters.pop("sagemaker_instance_type", None)
    return found
