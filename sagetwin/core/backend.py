"""The protocols every backend implements, built-in or third-party.

A backend turns a :class:`TrainingSpec` into a :class:`TrainingResult` and a
:class:`DeploySpec` into a running :class:`Endpoint`. The core talks to backends only
through these protocols and never imports a backend module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sagetwin.core.progress import Reporter
from sagetwin.core.spec import DeploySpec, TrainingResult, TrainingSpec


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run on this machine, and if not, why and how to fix it."""

    usable: bool
    reason: str = ""
    fix: str = ""


@runtime_checkable
class Endpoint(Protocol):
    """A running model server that answers SageMaker-style invocations."""

    name: str

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """Send one request; return the response body and its content type."""

    def delete(self) -> None:
        """Stop serving and release everything the endpoint holds."""


@runtime_checkable
class Backend(Protocol):
    """Runs training jobs and serves their models somewhere."""

    name: str
    description: str

    @classmethod
    def availability(cls) -> Availability:
        """Say whether this backend can run here; must be quick and side-effect free."""

    def fit(self, spec: TrainingSpec, reporter: Reporter) -> TrainingResult:
        """Run the training job to completion (or raise TrainingError)."""

    def deploy(self, spec: DeploySpec, reporter: Reporter) -> Endpoint:
        """Start serving ``spec.model_data``; return once the endpoint answers /ping."""
