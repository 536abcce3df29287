"""Plain descriptions of what to run and what came out: no backend knowledge here."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagetwin.core.errors import ConfigurationError


@dataclass(frozen=True)
class TrainingSpec:
    """Everything a backend needs to run one training job, in SageMaker's terms."""

    job_name: str
    entry_point: str
    source_dir: Path
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    instance_type: str | None = None
    instance_count: int = 1
    environment: dict[str, str] = field(default_factory=dict)
    output_path: str | None = None
    transformers_version: str | None = None
    pytorch_version: str | None = None
    py_version: str | None = None
    max_run: int = 24 * 3600
    role: str | None = None
    image_uri: str | None = None  # a container image of the person's own, as the SDK's image_uri=
    # a local folder the backend presents at checkpoint_local_path (CheckpointConfig), or None
    checkpoint_dir: str | None = None
    checkpoint_local_path: str = "/opt/ml/checkpoints"
    # the SDK's distribution= (e.g. {"torch_distributed": {"enabled": True}}): which launcher runs the script
    distribution: dict[str, Any] = field(default_factory=dict)
    # True where the person's own SDK already judged distribution= (a job made through the AWS API)
    distribution_checked: bool = False
    # AlgorithmSpecification.ContainerEntrypoint / ContainerArguments: the container's own command
    # instead of the training toolkit's entry point (SageMaker SDK v3 sends these)
    container_entrypoint: list[str] = field(default_factory=list)
    container_arguments: list[str] = field(default_factory=list)

    @property
    def entry_point_path(self) -> Path:
        return self.source_dir / self.entry_point


@dataclass(frozen=True)
class DeploySpec:
    """How to serve a trained model: instance, environment, local port."""

    endpoint_name: str
    model_data: str | None  # None: the model is env["HF_MODEL_ID"] (a Hub id or, offline, a folder)
    instance_type: str | None = None
    initial_instance_count: int = 1
    environment: dict[str, str] = field(default_factory=dict)
    port: int | None = None
    startup_timeout: float | None = None  # None: the backend's own default
    invocation_timeout: float = 60.0  # SageMaker's: how long one prediction may take
    transformers_version: str | None = None
    pytorch_version: str | None = None
    py_version: str | None = None
    role: str | None = None
    image_uri: str | None = None
    # what serves the model: the inference toolkit (the Hugging Face inference DLC), "tgi" (Text
    # Generation Inference's contract, the LLM DLC) or "tei" (Text Embeddings Inference's)
    server: str = "inference-toolkit"
    server_version: str | None = None  # the TGI or TEI version the image names (TGI's routing changed in 3.0)


@dataclass
class TrainingResult:
    """What a finished training job left behind."""

    job_name: str
    backend: str
    model_data: str
    metrics: dict[str, float] = field(default_factory=dict)
    output_data: str | None = None
    duration_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    # the Trainer's log records (loss, eval metrics per step) read from the streamed log
    log_history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_name": self.job_name,
            "backend": self.backend,
            "model_data": self.model_data,
            "metrics": self.metrics,
            "output_data": self.output_data,
            "duration_s": round(self.duration_s, 3),
            **({"details": self.details} if self.details else {}),
        }


def locate_entry_point(entry_point: str, source_dir: str | os.PathLike[str] | None) -> tuple[str, Path]:
    """``(entry_point, source_dir)`` as the SDK takes them → the script's name and its resolved folder."""
    source = Path(source_dir) if source_dir is not None else Path(entry_point).parent
    entry = entry_point if source_dir is not None else Path(entry_point).name
    if not source.is_dir():
        raise ConfigurationError(
            f"source_dir {source} does not exist or is not a folder.",
            "pass the folder that holds your training script, e.g. source_dir='train_scripts'.",
        )
    if not (source / entry).is_file():
        raise ConfigurationError(
            f"entry_point {entry!r} was not found in source_dir {source}.",
            f"check the file name; {source} contains: "
            + (", ".join(sorted(p.name for p in source.iterdir() if p.is_file())) or "no files") + ".",
        )
    return entry, source.resolve()


def check_hyperparameters(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """Fail early on values SageMaker could not carry (it JSON-encodes every value)."""
    if not isinstance(hyperparameters, dict):
        raise ConfigurationError(
            f"hyperparameters must be a dict of name -> value, got {type(hyperparameters).__name__}.",
            "pass a dict such as {'epochs': 1, 'model_name': 'distilbert-base-uncased'}.",
        )
    for key, value in hyperparameters.items():
        if not isinstance(key, str):
            raise ConfigurationError(
                f"hyperparameter name {key!r} is not a string.", "use string keys, e.g. 'epochs'."
            )
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"hyperparameter {key!r} has a value of type {type(value).__name__} that is not "
                f"JSON-serialisable ({exc}); SageMaker passes hyperparameters as JSON.",
                "pass numbers, strings, booleans, lists or dicts of those (e.g. str(path) for a Path).",
            ) from None
    return dict(hyperparameters)


def check_distribution_shape(distribution: Any) -> dict[str, Any]:
    """``distribution=`` as the SDK takes it, a dict of dicts; what each backend allows is its own call."""
    if not isinstance(distribution, dict) or not all(isinstance(v, dict) for v in distribution.values()):
        raise ConfigurationError(
            f"distribution must be a dict of dicts, as the SDK takes it; got {distribution!r}.",
            "write e.g. distribution={'torch_distributed': {'enabled': True}}.")
    return dict(distribution)


def enabled_launchers(distribution: dict[str, Any]) -> list[str]:
    """The launchers ``distribution=`` turns on: ``{"mpi": {"enabled": False}}`` turns none on, and
    ``{"smdistributed": {"dataparallel": {"enabled": True}}}`` turns smdistributed on."""
    def on(settings: Any) -> bool:
        return isinstance(settings, dict) and bool(settings.get("enabled") or any(
            isinstance(inner, dict) and inner.get("enabled") for inner in settings.values()))

    return [name for name, settings in distribution.items() if on(settings)]
