"""HuggingFaceModel: the SDK v2 ``HuggingFaceModel`` shape over any backend — deploy a model
without a training job: a ``model.tar.gz`` (``model_data``), or ``env={"HF_MODEL_ID": ...,
"HF_TASK": ...}`` as the guide's Hub-model notebooks do. ``HuggingFaceJob.deploy()`` uses it."""

from __future__ import annotations

import os
from typing import Any

from sagetwin.core.backend import Backend
from sagetwin.core.containers import server_of, server_version
from sagetwin.core.errors import ConfigurationError
from sagetwin.core.limits import INVOCATION_TIMEOUT_S, check_resource_name
from sagetwin.core.paths import unique_name
from sagetwin.core.plugins import get_backend_entry, get_plugin_manager
from sagetwin.core.predictor import Predictor
from sagetwin.core.progress import Reporter, StreamReporter
from sagetwin.core.selection import choose_backend, create_backend
from sagetwin.core.spec import DeploySpec
from sagetwin.core.versions import resolve_stack

MODEL_ID = "HF_MODEL_ID"


class HuggingFaceModel:
    """A servable model; ``deploy()`` returns the same :class:`Predictor` on every backend.

    ``model_data`` is a ``model.tar.gz`` path, ``file://`` or ``s3://`` URI; ``env`` is the
    serving container's environment (``HF_MODEL_ID`` — a Hub id, or offline a folder written
    by ``save_pretrained()`` — and ``HF_TASK``). As in the inference toolkit, ``HF_MODEL_ID``
    wins when both are given. ``backend`` is a name (as for ``HuggingFaceJob``) or a backend object.
    """

    def __init__(
        self,
        model_data: str | os.PathLike[str] | None = None,
        role: str | None = None,
        transformers_version: str | None = None,
        pytorch_version: str | None = None,
        py_version: str | None = None,
        env: dict[str, str] | None = None,
        image_uri: str | None = None,
        name: str | None = None,
        *,
        backend: str | Backend | None = None,
        reporter: Reporter | None = None,
        backend_options: dict[str, Any] | None = None,
    ) -> None:

        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        self.model_data = os.fspath(model_data) if model_data is not None else None
        if not self.model_data and not self.env.get(MODEL_ID):
            raise ConfigurationError(
                "HuggingFaceModel needs a model: neither model_data nor env['HF_MODEL_ID'] was given.",
                "pass model_data='model.tar.gz' (a path, file:// or s3:// URI), or env={'HF_MODEL_ID': "
                "'a-hub-id-or-local-folder', 'HF_TASK': 'text-classification'}.")
        self.role = role
        self.stack = resolve_stack(transformers_version, pytorch_version, py_version, scope="inference")
        self.versions = (transformers_version or self.stack.transformers, pytorch_version or self.stack.pytorch,
                         py_version or self.stack.py)  # as given: what the SDK's own model would send
        self.image_uri = image_uri
        self.name = check_resource_name(name, "modelName") if name is not None else None
        self.endpoint_prefix = self.name or "huggingface"  # endpoint names: <prefix>-ep-<time>-<random>
        self.reporter = reporter or StreamReporter()
        self.pm = get_plugin_manager()
        if backend is not None and not isinstance(backend, str):
            self._backend: Backend | None = backend
            self.backend_name, self.backend_reason = backend.name, "given as an object"
        else:
            self.backend_name, self.backend_reason = choose_backend(backend, self.pm)
            get_backend_entry(self.backend_name, self.pm)  # unknown names fail here, before any work
            self._backend = None
        self._create = lambda: create_backend(self.backend_name, self.pm, **dict(backend_options or {}))

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = self._create()
        return self._backend

    def deploy(
        self,
        initial_instance_count: int = 1,
        instance_type: str | None = None,
        *,
        endpoint_name: str | None = None,
        port: int | None = None,
        startup_timeout: float | None = None,
        invocation_timeout: float = INVOCATION_TIMEOUT_S,
    ) -> Predictor:
        """Serve the model; use as ``with model.deploy() as predictor:`` to always delete it."""
        if initial_instance_count < 1:
            raise ConfigurationError(f"initial_instance_count must be >= 1, got {initial_instance_count}.",
                                     "use 1 or more.")
        spec = DeploySpec(
            endpoint_name=check_resource_name(endpoint_name, "endpointName") if endpoint_name is not None
            else unique_name(self.endpoint_prefix + "-ep"),
            model_data=self.model_data, instance_type=instance_type,
            initial_instance_count=initial_instance_count, environment=dict(self.env),
            port=port, startup_timeout=startup_timeout, invocation_timeout=invocation_timeout,
            transformers_version=self.versions[0], pytorch_version=self.versions[1],
            py_version=self.versions[2], role=self.role, image_uri=self.image_uri,
            server=server_of(self.image_uri),  # the LLM and embeddings containers serve their own contracts
            server_version=server_version(self.image_uri),
        )
        source = self.env.get(MODEL_ID) or self.model_data
        self.reporter.step(f"deploying endpoint {spec.endpoint_name} on backend {self.backend_name} "
                           f"({self.backend_reason}) from {source}; stack: {self.stack.describe()}")
        endpoint = self.backend.deploy(spec, self.reporter)
        try:  # it exists from here on: an error or Ctrl-C in a hook must not leave it running
            self.pm.hook.sagetwin_endpoint_created(endpoint=endpoint, backend=self.backend_name)
            self.reporter.step(f"endpoint {endpoint.name} is in service")
        except BaseException:
            endpoint.delete()
            raise

        def deleted(ep: Any) -> None:
            self.reporter.step(f"endpoint {ep.name} deleted")
            self.pm.hook.sagetwin_endpoint_deleted(endpoint=ep, backend=self.backend_name)

        return Predictor(endpoint, self.backend_name, on_delete=deleted)
