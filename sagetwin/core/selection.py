"""Which backend runs a job or serves a model, and making it: argument > ``$SAGETWIN_BACKEND`` >
``auto``. Its own module, so ``job`` and ``model`` both use it without importing each other."""

from __future__ import annotations

import os
from typing import Any

import pluggy

from sagetwin.core.backend import AutoSelectable, Backend
from sagetwin.core.errors import BackendUnavailableError
from sagetwin.core.plugins import backend_entries, get_backend_entry

AUTO = "auto"
BACKEND_ENV = "SAGETWIN_BACKEND"


def choose_backend(requested: str | None = None, pm: pluggy.PluginManager | None = None) -> tuple[str, str]:
    """Argument > ``$SAGETWIN_BACKEND`` > ``auto``; returns (name, why it was chosen).

    ``auto`` picks the usable backend with the highest ``auto_priority``; backends that
    cost money leave it unset so they are never picked implicitly.
    """
    if requested and requested != AUTO:
        return requested, "requested explicitly"
    env_value = os.environ.get(BACKEND_ENV)
    if env_value and env_value != AUTO and not requested:
        return env_value, f"from ${BACKEND_ENV}"
    candidates = sorted(
        (e for e in backend_entries(pm).values()
         if isinstance(e.cls, AutoSelectable) and e.cls.auto_priority is not None),
        key=lambda e: -e.cls.auto_priority,
    )
    skipped: list[str] = []
    for entry in candidates:
        availability = entry.availability()
        if availability.usable:
            because = f" ({'; '.join(skipped)})" if skipped else ""
            return entry.name, f"auto: {entry.name} is usable here{because}"
        skipped.append(f"{entry.name}: {availability.reason}")
    raise BackendUnavailableError(
        "auto could not find a usable backend: " + ("; ".join(skipped) or "none installed") + ".",
        "run `sagetwin backends` to see what is installed and why each is unusable.",
    )


def create_backend(name: str, pm: pluggy.PluginManager | None = None, **options: Any) -> Backend:
    entry = get_backend_entry(name, pm)
    availability = entry.availability()
    if not availability.usable:
        raise BackendUnavailableError(
            f"backend {name!r} cannot run here: {availability.reason}.",
            availability.fix or "run `sagetwin doctor` or pick another backend (e.g. --backend process).",
        )
    return entry.cls(**options)
