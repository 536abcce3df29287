"""HuggingFaceJob: the SDK v2 ``HuggingFace`` estimator's shape over any backend.

It holds the job description, asks the chosen backend to fit and deploy, and tells
plugins what happened. It never imports a backend module: backends come from the
plugin manager by name.
"""

from __future__ import annotations

import os
from typing import Any

from sagetwin.core.backend import Backend
from sagetwin.core.errors import ConfigurationError
from sagetwin.core.limits import (
    INVOCATION_TIMEOUT_S,
    check_channel_names,
    check_hyperparameter_limits,
    check_resource_name,
)
from sagetwin.core.model import HuggingFaceModel
from sagetwin.core.paths import unique_name
from sagetwin.core.plugins import get_backend_entry, get_plugin_manager
from sagetwin.core.predictor import Predictor
from sagetwin.core.progress import Reporter, StreamReporter
from sagetwin.core.selection import choose_backend, create_backend
from sagetwin.core.spec import (
    TrainingResult,
    TrainingSpec,
    check_distribution_shape,
    check_hyperparameters,
    locate_entry_point,
)
from sagetwin.core.training_log import HistoryTap, LogHistory
from sagetwin.core.versions import resolve_stack


class HuggingFaceJob:
    """Fine-tune with a training script, then deploy: the same code on every backend.

    Mirrors ``sagemaker.huggingface.HuggingFace``: ``entry_point``, ``source_dir``,
    ``hyperparameters``, ``instance_type``, ``instance_count``, versions, ``image_uri``, ``distribution``;
    plus ``backend``.
    """

    def __init__(
        self,
        entry_point: str,
        source_dir: str | os.PathLike[str] | None = None,
        hyperparameters: dict[str, Any] | None = None,
        *,
        backend: str | None = None,
        instance_type: str | None = None,
        instance_count: int = 1,
        role: str | None = None,
        transformers_version: str | None = None,
        pytorch_version: str | None = None,
        py_version: str | None = None,
        environment: dict[str, str] | None = None,
        output_path: str | None = None,
        base_job_name: str | None = None,
        max_run: int = 24 * 3600,
        image_uri: str | None = None,
        distribution: dict[str, Any] | None = None,
        reporter: Reporter | None = None,
        backend_options: dict[str, Any] | None = None,
    ) -> None:
        entry, source = locate_entry_point(entry_point, source_dir)
        if instance_count < 1:
            raise ConfigurationError(f"instance_count must be >= 1, got {instance_count}.", "use 1 or more.")
        self.entry_point = entry
        self.source_dir = source
        self.hyperparameters = check_hyperparameters(hyperparameters or {})
        check_hyperparameter_limits(self.hyperparameters)
        self.instance_type = instance_type
        self.instance_count = instance_count
        self.role = role
        # the SDK's resolution (aliases, errors) for every backend alike, before anything runs
        self.stack = resolve_stack(transformers_version, pytorch_version, py_version, scope="training")
        # the versions as given (an alias such as "4.26" stays one): a backend that sends them to
        # SageMaker sends what the SDK's own estimator sends for the same arguments
        self.transformers_version = transformers_version or self.stack.transformers
        self.pytorch_version = pytorch_version or self.stack.pytorch
        self.py_version = py_version or self.stack.py
        self.environment = dict(environment or {})
        self.output_path = output_path
        self.base_job_name = base_job_name or "huggingface"
        self.max_run = max_run
        self.image_uri = image_uri
        self.distribution = check_distribution_shape(distribution or {})
        self.reporter = reporter or StreamReporter()
        self.pm = get_plugin_manager()
        self.backend_name, self.backend_reason = choose_backend(backend, self.pm)
        self.backend_options = dict(backend_options or {})
        get_backend_entry(self.backend_name, self.pm)  # unknown names fail here, before any work
        self._backend: Backend | None = None
        self.latest_training: TrainingResult | None = None

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = create_backend(self.backend_name, self.pm, **self.backend_options)
        return self._backend

    @property
    def model_data(self) -> str | None:
        return self.latest_training.model_data if self.latest_training else None

    def training_spec(self, inputs: dict[str, str] | str | None = None, *, job_name: str | None = None
                      ) -> TrainingSpec:
        """The job as a backend sees it (also used to plan and price a launch before it starts)."""
        if isinstance(inputs, (str, os.PathLike)):
            inputs = {"training": str(inputs)}
        channels = {str(k): str(v) for k, v in (inputs or {}).items()}
        check_channel_names(channels)
        return TrainingSpec(
            job_name=check_resource_name(job_name, "trainingJobName") if job_name is not None
            else unique_name(self.base_job_name),
            entry_point=self.entry_point, source_dir=self.source_dir,
            hyperparameters=self.hyperparameters, inputs=channels,
            instance_type=self.instance_type, instance_count=self.instance_count,
            environment=self.environment, output_path=self.output_path,
            transformers_version=self.transformers_version, pytorch_version=self.pytorch_version,
            py_version=self.py_version, max_run=self.max_run, role=self.role, image_uri=self.image_uri,
            distribution=self.distribution,
        )

    def fit(self, inputs: dict[str, str] | str | None = None, *, job_name: str | None = None,
            spec: TrainingSpec | None = None) -> TrainingResult:
        """Run the training job; ``inputs`` maps channel names to data locations, like the SDK.

        ``spec`` runs a job described earlier by :meth:`training_spec` (the one a launch plan showed)."""
        spec = spec or self.training_spec(inputs, job_name=job_name)
        backend = self.backend
        self.reporter.step(f"training job {spec.job_name} on backend {self.backend_name} ({self.backend_reason}); "
                           f"stack: {self.stack.describe()}")
        self.pm.hook.sagetwin_training_started(spec=spec, backend=self.backend_name)
        history = LogHistory()
        try:
            result = backend.fit(spec, HistoryTap(self.reporter, history))
            if not result.log_history:
                result.log_history = history.records
        except BaseException as exc:
            self.pm.hook.sagetwin_training_finished(spec=spec, result=None, error=exc)
            raise
        self.pm.hook.sagetwin_training_finished(spec=spec, result=result, error=None)
        self.latest_training = result
        self.reporter.step(f"training finished in {result.duration_s:.1f}s; model_data {result.model_data}")
        return result

    def deploy(
        self,
        initial_instance_count: int = 1,
        instance_type: str | None = None,
        *,
        endpoint_name: str | None = None,
        model_data: str | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
        startup_timeout: float | None = None,
        invocation_timeout: float = INVOCATION_TIMEOUT_S,
    ) -> Predictor:
        """Serve the trained model (or ``model_data``); use as ``with job.deploy() as predictor:`` to
        always delete it. A :class:`HuggingFaceModel` on this job's backend and stack does the work."""
        model_data = model_data or self.model_data
        if not model_data:
            raise ConfigurationError(
                "there is no model to deploy: fit() has not run in this job and no model_data was given.",
                "call job.fit(...) first, or pass model_data='file:///path/model.tar.gz'.",
            )
        model = HuggingFaceModel(
            model_data, self.role, self.transformers_version, self.pytorch_version, self.py_version,
            env=env, backend=self.backend, reporter=self.reporter)
        model.backend_name, model.backend_reason = self.backend_name, self.backend_reason
        model.endpoint_prefix = self.base_job_name
        return model.deploy(initial_instance_count, instance_type, endpoint_name=endpoint_name, port=port,
                            startup_timeout=startup_timeout, invocation_timeout=invocation_timeout)
