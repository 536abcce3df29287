"""sagetwin: one Hugging Face fine-tune → deploy → predict workflow, many backends.

    job = sagetwin.HuggingFaceJob(entry_point="train.py", source_dir="train_scripts",
                                  hyperparameters={"epochs": 1, "model_name": "..."},
                                  backend="process")
    job.fit({"train": train_dir, "test": test_dir})
    with job.deploy() as predictor:
        predictor.predict({"inputs": "I love it"})
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sagetwin.core.errors import (
        BackendNotFoundError,
        BackendUnavailableError,
        ConfigurationError,
        EndpointError,
        EndpointNotFoundError,
        InvocationError,
        SagetwinError,
        TrainingError,
    )
    from sagetwin.core.hookspecs import hookimpl
    from sagetwin.core.job import HuggingFaceJob
    from sagetwin.core.model import HuggingFaceModel
    from sagetwin.core.predictor import Predictor
    from sagetwin.core.spec import DeploySpec, TrainingResult, TrainingSpec

__version__ = "0.1.0"

# Imported when first asked for (PEP 562): the container emulations run ``sagetwin.emulation``
# modules inside serving images that have torch and transformers but not the workflow's own
# dependencies (pluggy), and a model server's start does not pay for the workflow's imports.
_HOMES = {
    **dict.fromkeys(("BackendNotFoundError", "BackendUnavailableError", "ConfigurationError", "EndpointError",
                     "EndpointNotFoundError", "InvocationError", "SagetwinError", "TrainingError"),
                    "sagetwin.core.errors"),
    "hookimpl": "sagetwin.core.hookspecs",
    "HuggingFaceJob": "sagetwin.core.job",
    "HuggingFaceModel": "sagetwin.core.model",
    "Predictor": "sagetwin.core.predictor",
    **dict.fromkeys(("DeploySpec", "TrainingResult", "TrainingSpec"), "sagetwin.core.spec"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'sagetwin' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # asked once
    return value


__all__ = [
    "BackendNotFoundError",
    "BackendUnavailableError",
    "ConfigurationError",
    "DeploySpec",
    "EndpointError",
    "EndpointNotFoundError",
    "HuggingFaceJob",
    "HuggingFaceModel",
    "InvocationError",
    "Predictor",
    "SagetwinError",
    "TrainingError",
    "TrainingResult",
    "TrainingSpec",
    "hookimpl",
]
