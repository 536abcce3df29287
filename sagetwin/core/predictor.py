"""Predictor: the SDK's HuggingFacePredictor shape (JSON in, JSON out) over any backend's endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from sagetwin.core.backend import Endpoint
from sagetwin.core.errors import ConfigurationError, EndpointError, EndpointNotFoundError, InvocationError
from sagetwin.core.limits import MAX_PAYLOAD_BYTES, payload_too_large

JSON = "application/json"


class Predictor:
    """Calls an endpoint with JSON and deletes it; ``with job.deploy() as p:`` always deletes."""

    def __init__(self, endpoint: Endpoint, backend: str,
                 on_delete: Callable[[Endpoint], None] | None = None) -> None:
        self.endpoint = endpoint
        self.backend = backend
        self._on_delete = on_delete
        self._deleted = False
        self._lock = threading.Lock()

    @property
    def endpoint_name(self) -> str:
        return self.endpoint.name

    @property
    def deleted(self) -> bool:
        return self._deleted

    def predict(self, data: Any, *, content_type: str = JSON, accept: str = JSON) -> Any:
        """Send ``data`` (JSON-serialised unless bytes/str with another content type); decode JSON answers."""
        if self._deleted:
            raise EndpointNotFoundError(
                f"endpoint {self.endpoint_name} was deleted; it cannot answer predictions.",
                "deploy again with job.deploy() to get a new endpoint.",
            )
        if isinstance(data, bytes):
            body = data
        elif isinstance(data, str) and content_type != JSON:
            body = data.encode("utf-8")
        else:
            try:
                body = json.dumps(data).encode("utf-8")
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(
                    f"prediction input of type {type(data).__name__} cannot be sent as JSON ({exc}).",
                    'pass JSON-serialisable data such as {"inputs": "some text"}, or bytes with content_type.',
                ) from None
        if len(body) > MAX_PAYLOAD_BYTES:
            raise InvocationError(f"endpoint {self.endpoint_name}: {payload_too_large(len(body))}.",
                                  "send at most 6 MB per request: split the inputs, or use batch transform.",
                                  status=413, body="")
        payload, answer_type = self.endpoint.invoke(body, content_type, accept)
        if answer_type.split(";")[0].strip() == JSON:
            return json.loads(payload)
        return payload

    def delete_endpoint(self) -> None:
        """Delete the endpoint; a second call raises EndpointNotFoundError, as SageMaker does."""
        with self._lock:
            if self._deleted:
                raise EndpointNotFoundError(
                    f"endpoint {self.endpoint_name} was already deleted.",
                    "nothing to do; deploy again if you need a new endpoint.",
                )
            try:
                self.endpoint.delete()
            except Exception as exc:
                raise EndpointError(
                    f"endpoint {self.endpoint_name} could not be deleted ({type(exc).__name__}: {exc}); it may still "
                    "be running (and, on AWS, billing).",
                    f"call delete_endpoint() again, or run `sagetwin endpoints --delete {self.endpoint_name}`.",
                ) from exc
            self._deleted = True
            if self._on_delete is not None:
                self._on_delete(self.endpoint)

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._deleted:
            self.delete_endpoint()

    def __repr__(self) -> str:
        state = "deleted" if self._deleted else "live"
        return f"<Predictor {self.endpoint_name} on {self.backend} ({state})>"
