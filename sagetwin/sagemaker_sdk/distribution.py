"""The estimator's ``distribution=`` argument, judged as the SDK's ``HuggingFace`` estimator judges
it for the cloud, so an offline run refuses what SageMaker's own client would refuse."""

from __future__ import annotations

from sagetwin.core.errors import ConfigurationError
from sagetwin.core.spec import TrainingSpec, enabled_launchers
from sagetwin.core.versions import Stack

# Where no instance type is named, the cloud's default training instance (a GPU one).
CLOUD_DEFAULT_INSTANCE = "ml.p3.2xlarge"


def check_distribution(spec: TrainingSpec, stack: Stack) -> None:
    """The SDK's own ``validate_distribution`` with the cloud instance type and the versions as given
    (an alias such as "1.13" is refused for torch_distributed there too), for a job whose image is
    the DLC's: a ValueError becomes a ConfigurationError naming the fix."""
    offline = [name for name in enabled_launchers(spec.distribution) if name in ("smdistributed", "pytorchddp", "mpi")]
    if offline:
        raise ConfigurationError(
            f"distribution={{'{offline[0]}': ...}} is launched by SageMaker with "
            + ("its smdistributed library (GPU instances only)" if offline[0] == "smdistributed" else
               "smddprun under MPI (GPU instances only)" if offline[0] == "pytorchddp" else
               "mpirun, over SSH between its hosts")
            + ", which the local images do not have.",
            "test the same script with distribution={'torch_distributed': {'enabled': True}} (torchrun, as the "
            "PyTorch toolkit launches it), and keep this setting for the run on SageMaker.")
    if not spec.distribution or spec.image_uri or spec.distribution_checked:
        return  # with an image of the person's own the SDK checks nothing either; a twin's client checked it
    from sagetwin.sagemaker_sdk.sdk import import_sdk

    import_sdk()
    from sagemaker.fw_utils import validate_distribution

    requested = spec.instance_type
    cloud_type = requested if requested and not requested.startswith("local") else CLOUD_DEFAULT_INSTANCE
    try:
        validate_distribution(dict(spec.distribution), None, "pytorch", spec.pytorch_version or stack.pytorch,
                              spec.py_version or stack.py, None,
                              {"instance_type": cloud_type, "entry_point": spec.entry_point})
    except ValueError as exc:
        raise ConfigurationError(
            f"SageMaker's SDK refuses this distribution for {cloud_type}: {' '.join(str(exc).split())}",
            "change distribution, instance_type or the versions as the message says: the cloud estimator "
            "refuses the same.") from None
