"""The SDK v2 estimator that runs a job in local mode: the SDK's own ``HuggingFace`` estimator
for a script the training toolkit starts, or a plain ``Estimator`` with the job's
``ContainerEntrypoint``/``ContainerArguments`` (what SageMaker SDK v3 sends), which local mode runs
as the container's entrypoint and command, as SageMaker does."""

from __future__ import annotations

import json
from typing import Any

from sagetwin.core.spec import TrainingSpec
from sagetwin.core.versions import Stack


def sent_as_strings(hyperparameters: dict[str, Any]) -> dict[str, str]:
    """The values as a job with its own entrypoint received them: strings as they are, the rest
    as JSON (SDK v3's encoding); the plain ``Estimator`` would write ``str()`` of a list."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in hyperparameters.items()}


def local_estimator(spec: TrainingSpec, stack: Stack, *, image: str, instance_type: str, role: str,
                    session: Any, output_uri: str) -> Any:
    """The estimator for ``spec`` in ``session`` (a local session), writing under ``output_uri``."""
    common = {"image_uri": image, "instance_type": instance_type, "instance_count": spec.instance_count,
              "role": role, "environment": dict(spec.environment) or None, "sagemaker_session": session,
              "output_path": output_uri, "max_run": spec.max_run}
    if spec.container_entrypoint:
        from sagemaker.estimator import Estimator

        return Estimator(container_entry_point=list(spec.container_entrypoint),
                         container_arguments=list(spec.container_arguments) or None,
                         hyperparameters=sent_as_strings(dict(spec.hyperparameters)), **common)
    from sagemaker.huggingface import HuggingFace

    return HuggingFace(entry_point=spec.entry_point, source_dir=str(spec.source_dir),
                       transformers_version=stack.transformers, pytorch_version=stack.pytorch, py_version=stack.py,
                       hyperparameters=dict(spec.hyperparameters), distribution=dict(spec.distribution) or None,
                       **common)
