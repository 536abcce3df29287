"""The protocols every backend implements, built-in or third-party, and the optional
capabilities a backend may add.

A backend turns a :class:`TrainingSpec` into a :class:`TrainingResult` and a
:class:`DeploySpec` into a running :class:`Endpoint`. The core talks to backends only
through these protocols and never imports a backend module. Optional capabilities are
declared as runtime-checkable protocols: callers ask ``isinstance(backend, Plans)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from sagetwin.core.progress import Reporter
from sagetwin.core.spec import DeploySpec, TrainingResult, TrainingSpec


@dataclass(frozen=True)
class Check:
    """One verdict about this machine or a job: ok (True), not ok (False) or not judged (None),
    what was seen, and how to fix it. Backends' ``availability()`` and doctor items both use it."""

    ok: bool | None
    detail: str = ""
    fix: str = ""
    name: str = ""

    def render(self) -> str:
        mark = {True: "PASS", False: "FAIL", None: "NOTE"}[self.ok]
        text = f"[{mark}] {self.name}" + (f": {self.detail}" if self.detail else "")
        if self.fix and self.ok is False:
            text += f"\n       fix: {self.fix}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def usable(self) -> bool:
        """As ``availability()`` is read: only a plain yes makes a backend usable."""
        return self.ok is True

    @property
    def reason(self) -> str:
        return self.detail


Availability = Check  # what ``availability()`` returns: the same verdict, under the name plugins know


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
    def availability(cls) -> Check:
        """Say whether this backend can run here; must be quick and side-effect free."""

    def fit(self, spec: TrainingSpec, reporter: Reporter) -> TrainingResult:
        """Run the training job to completion (or raise TrainingError)."""

    def deploy(self, spec: DeploySpec, reporter: Reporter) -> Endpoint:
        """Start serving ``spec.model_data``; return once the endpoint answers /ping."""


# --------------------------------------------------------------------------- optional capabilities


@runtime_checkable
class AutoSelectable(Protocol):
    """`auto` may choose this backend; the highest priority among the usable ones wins.
    Backends that cost money leave this out so they are never picked implicitly."""

    auto_priority: int


@runtime_checkable
class PlanLine(Protocol):
    """One line of a launch plan (what starts, how many, what it can cost)."""

    def render(self) -> str: ...


@runtime_checkable
class Plans(Protocol):
    """Launches billed resources: says what and at what cost before anything starts."""

    def launch_plan(self, training: TrainingSpec | None, endpoint_instance_type: str | None = None
                    ) -> Sequence[PlanLine]: ...


@runtime_checkable
class DryRuns(Protocol):
    """Can show the exact requests a launch would send, sending none."""

    def dry_run(self, training: TrainingSpec, endpoint_instance_type: str | None, reporter: Reporter
                ) -> list[dict[str, Any]]: ...


@runtime_checkable
class TakesCustomAttributes(Protocol):
    """An endpoint that passes SageMaker's ``CustomAttributes`` (the
    ``X-Amzn-SageMaker-Custom-Attributes`` header) on to its model server."""

    def invoke_with_attributes(self, body: bytes, content_type: str, accept: str, custom_attributes: str
                               ) -> tuple[bytes, str]: ...


@runtime_checkable
class ListsEndpoints(Protocol):
    """Keeps endpoints beyond the process that made them: lists and deletes them by name."""

    def list_endpoints(self) -> list[dict[str, Any]]: ...

    def delete_endpoint(self, name: str) -> None: ...


@runtime_checkable
class ServesHttp(Protocol):
    """An endpoint with a plain HTTP address on this machine: ``POST {url}/invocations``,
    ``GET {url}/ping``, as a SageMaker container serves them."""

    url: str
