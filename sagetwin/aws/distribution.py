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
    """Launchers no offline backend has, refused clearly: smdistributed (a GPU-only library of
    SageMaker's own containers), and the MPI-based ones (``pytorchddp`` starts smddprun, ``mpi``
    mpirun over SSH between hosts)."""
    hyperparameters = decode_hyperparameters(request.get("HyperParameters") or {})
    on = [name for name, used in (
        ("{'smdistributed': {'dataparallel': ...}}", _enabled(hyperparameters.get(SMDDP))),
        ("{'smdistributed': {'modelparallel': ...}}", SMMP in hyperparameters),
        *((f"{{'{key}': ...}}", _enabled(hyperparameters.get(name))) for name, key in LAUNCHERS.items()
          if key != "torch_distributed")) if used]
    if not on:
        return None
    what = ("SageMaker's smdistributed library, which runs only on GPU instances in its own training containers"
            if "smdistributed" in on[0] else "SageMaker's smddprun under MPI, which runs only on GPU instances"
            if "pytorchddp" in on[0] else "mpirun, which SageMaker starts over SSH between its hosts")
    return service_error(
        "ValidationException",
        f"distribution={on[0]} uses {what}; it is not emulated offline. "
        "The Hugging Face examples fall back to PyTorch DDP: test with distribution="
        "{'torch_distributed': {'enabled': True}} and instance_count=2 on --backend local (torchrun, as the PyTorch "
        "toolkit launches it), and keep this setting for the run on SageMaker itself.")


def distribution_of(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The ``distribution=`` a CreateTrainingJob request was made from, taken out of its decoded
    hyperparameters: the backend that runs the job writes them again, as the SDK does."""
    found: dict[str, Any] = {}
    for name, key in LAUNCHERS.items():
        if _enabled(hyperparameters.pop(name, None)):
            found[key] = {"enabled": True}
    hyperparameters.pop("sagemaker_instance_type", None)
    return found


def _enabled(value: Any) -> bool:
    """A launcher's hyperparameter as the SDK writes it (JSON ``true``), decoded or not."""
    return value in (True, "true", "True")
