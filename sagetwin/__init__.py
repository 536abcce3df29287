"""sagetwin: one Hugging Face fine-tune → deploy → predict workflow, many backends.

    job = sagetwin.HuggingFaceJob(entry_point="train.py", source_dir="train_scripts",
                                  hyperparameters={"epochs": 1, "model_name": "..."},
                                  backend="process")
    job.fit({"train": train_dir, "test": test_dir})
    with job.deploy() as predictor:
        predictor.predict({"inputs": "I love it"})
"""

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
