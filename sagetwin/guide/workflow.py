"""The getting-started guide's workflow as one function: prepare → fit → deploy → predict → delete.

``sagetwin run`` calls it; so do the tests that prove every backend behaves the same.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagetwin.core.backend import Backend, DryRuns, Plans
from sagetwin.core.errors import SagetwinError
from sagetwin.core.job import HuggingFaceJob
from sagetwin.core.plugins import get_backend_entry
from sagetwin.core.progress import Reporter, StreamReporter
from sagetwin.core.spec import TrainingSpec
from sagetwin.guide.data import prepare_datasets, resolve_model

GUIDE_SENTENCE = (
    "It feels like a curtain closing...there was an elegance in the way they moved toward conclusion. "
    "No fan is going to watch and feel short-changed."
)


def default_source_dir() -> Path:
    """The ``train_scripts`` folder shipped with sagetwin (installed as ``sagetwin.train_scripts``)."""
    module = importlib.import_module("sagetwin.train_scripts")
    return Path(module.__file__).resolve().parent


@dataclass
class WorkflowOptions:
    """What ``sagetwin run`` can change; defaults are the guide's, sized for a laptop."""

    backend: str | None = None
    model: str = "minilm"
    dataset: str = "sample"
    epochs: float = 2
    max_steps: int = -1
    train_batch_size: int = 32
    eval_batch_size: int = 64
    learning_rate: float = 1e-4
    warmup_steps: int = 10
    train_size: int = 2000
    test_size: int = 500
    entry_point: str = "train.py"
    source_dir: Path | None = None
    sentence: str = GUIDE_SENTENCE
    extra_hyperparameters: dict[str, Any] = field(default_factory=dict)
    instance_type: str | None = None
    endpoint_instance_type: str | None = None
    role: str | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)


Confirm = Callable[[list[str]], bool]


def plan_launch(backend: Backend, spec: TrainingSpec, endpoint_instance_type: str | None) -> list[str]:
    """Lines describing what a paid backend will launch and cost; empty for free backends."""
    if not isinstance(backend, Plans):
        return []
    return [line.render() for line in backend.launch_plan(spec, endpoint_instance_type)]


def dry_run(options: WorkflowOptions, reporter: Reporter | None = None) -> dict[str, Any]:
    """What fit + deploy would send to a paid backend, without sending it (backends that are ``DryRuns``)."""
    reporter = reporter or StreamReporter()
    job, channels, _ = _prepare_job(options, reporter)
    # no availability check: a dry run needs no credentials, it sends nothing
    backend = get_backend_entry(job.backend_name).cls(**options.backend_options)
    if not isinstance(backend, DryRuns):
        raise SagetwinError(f"backend {job.backend_name!r} launches nothing billable, so there is nothing to dry-run.",
                            "drop --dry-run, or use it with --backend sagemaker.")
    spec = job.training_spec(channels)  # one job: the plan and the requests name the same one
    requests = backend.dry_run(spec, options.endpoint_instance_type, reporter)
    return {"backend": job.backend_name, "plan": plan_launch(backend, spec, options.endpoint_instance_type),
            "requests": requests}


def _prepare_job(options: WorkflowOptions, reporter: Reporter) -> tuple[HuggingFaceJob, dict[str, str], Any]:
    model = resolve_model(options.model)
    channels = prepare_datasets(options.dataset, model.tokenizer_source, train_size=options.train_size,
                                test_size=options.test_size, reporter=reporter)
    channels.update(model.channels())
    hyperparameters = {
        "epochs": options.epochs,
        "train_batch_size": options.train_batch_size,
        "eval_batch_size": options.eval_batch_size,
        "learning_rate": options.learning_rate,
        "warmup_steps": options.warmup_steps,
        "model_name": model.hyperparameter,
        "max_steps": options.max_steps,
        **options.extra_hyperparameters,
    }
    job = HuggingFaceJob(
        entry_point=options.entry_point, source_dir=options.source_dir or default_source_dir(),
        hyperparameters=hyperparameters, backend=options.backend, instance_type=options.instance_type,
        role=options.role, reporter=reporter, backend_options=options.backend_options,
    )
    return job, channels, model


def run_workflow(options: WorkflowOptions, reporter: Reporter | None = None,
                 confirm: Confirm | None = None) -> dict[str, Any]:
    """Run the whole workflow; the endpoint is deleted before returning, also on errors.

    For backends that cost money, ``confirm`` sees the launch plan first and may refuse it.
    """
    reporter = reporter or StreamReporter()
    timings: dict[str, float] = {}
    started = time.monotonic()
    job, channels, model = _prepare_job(options, reporter)
    timings["prepare_s"] = time.monotonic() - started
    spec = job.training_spec(channels)  # one job: the plan shown is the job that runs
    plan = plan_launch(job.backend, spec, options.endpoint_instance_type)
    for line in plan:
        reporter.step(f"plan: {line}")
    if plan and confirm is not None and not confirm(plan):
        raise SagetwinError("cancelled: nothing was launched.", "rerun with --yes to skip the question.")
    mark = time.monotonic()
    training = job.fit(spec=spec)
    timings["fit_s"] = time.monotonic() - mark

    mark = time.monotonic()
    with job.deploy(instance_type=options.endpoint_instance_type) as predictor:
        timings["deploy_s"] = time.monotonic() - mark
        mark = time.monotonic()
        prediction = predictor.predict({"inputs": options.sentence})
        timings["predict_s"] = time.monotonic() - mark
        endpoint_name = predictor.endpoint_name
        mark = time.monotonic()
    timings["delete_s"] = time.monotonic() - mark
    timings["total_s"] = time.monotonic() - started
    return {
        "backend": job.backend_name,
        "backend_reason": job.backend_reason,
        "model": model.name,
        "dataset": options.dataset,
        "training": {"job_name": training.job_name, "metrics": training.metrics,
                     "model_data": training.model_data, **training.details},
        "endpoint": {"name": endpoint_name, "deleted": predictor.deleted},
        "input": options.sentence,
        "prediction": prediction if not isinstance(prediction, bytes) else prediction.decode("utf-8", "replace"),
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
