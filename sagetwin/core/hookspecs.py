"""pluggy hook specifications: how plugins add backends and observe the workflow."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from sagetwin.core.backend import Endpoint
    from sagetwin.core.spec import TrainingResult, TrainingSpec

hookspec = pluggy.HookspecMarker("sagetwin")
hookimpl = pluggy.HookimplMarker("sagetwin")


@hookspec
def sagetwin_register_backends(register: Callable[[type], None]) -> None:
    """Register backend classes by calling ``register(BackendClass)`` once per backend.

    Built-in backends use this same hook, so a third-party backend is a peer of theirs.
    """


@hookspec
def sagetwin_doctor_checks() -> list:
    """Return :class:`~sagetwin.core.backend.Check` items about whether this plugin's backends can
    run here (for `sagetwin doctor`)."""


@hookspec
def sagetwin_register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add commands to the ``sagetwin`` CLI: ``subparsers.add_parser(name, help=...)``, then
    ``parser.set_defaults(func=handler)`` where ``handler(args) -> int`` is the exit code.

    The core CLI has only ``run``, ``backends`` and ``doctor``; the built-in plugins add the rest
    (``check``, ``image build``, ``endpoints``) through this same hook.
    """


@hookspec
def sagetwin_endpoint_listers() -> list:
    """Return ``(name, lister)`` pairs for endpoints kept somewhere other than a backend (the AWS
    twin's, for one): each lister has ``list_endpoints()`` and ``delete_endpoint(name)`` as in
    :class:`~sagetwin.core.backend.ListsEndpoints`; ``sagetwin endpoints`` shows them too."""


@hookspec
def sagetwin_training_started(spec: TrainingSpec, backend: str) -> None:
    """A training job is about to start on ``backend``."""


@hookspec
def sagetwin_training_finished(spec: TrainingSpec, result: TrainingResult | None, error: Any) -> None:
    """A training job ended: ``result`` on success, ``error`` (the exception) on failure."""


@hookspec
def sagetwin_endpoint_created(endpoint: Endpoint, backend: str) -> None:
    """An endpoint answers requests; it will bill / hold resources until deleted."""


@hookspec
def sagetwin_endpoint_deleted(endpoint: Endpoint, backend: str) -> None:
    """An endpoint was deleted."""
