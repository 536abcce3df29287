"""Errors that tell a person what went wrong and how to fix it.

Every error sagetwin raises on bad input is a :class:`SagetwinError` carrying a
``problem`` and a ``fix``; the CLI prints them as one paragraph instead of a traceback.
"""

from __future__ import annotations


def log_excerpt(source: str, text: str) -> str:
    """The last lines of a log, quoted under a heading that names it; empty text gives ''."""
    if not text.strip():
        return ""
    return f"Last lines of {source}:\n" + "\n".join("  | " + line for line in text.splitlines())


class SagetwinError(Exception):
    """A problem the user can act on: what went wrong, and what to do about it."""

    def __init__(self, problem: str, fix: str = "", *, details: str = "") -> None:
        self.problem = problem.rstrip()
        self.fix = fix.rstrip()
        self.details = details.rstrip()
        super().__init__(self.render())

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        text = self.problem
        if self.fix:
            text += f" Fix: {self.fix}"
        if self.details:
            text += "\n" + self.details
        return text


class ConfigurationError(SagetwinError):
    """The job, its inputs or its options are wrong before anything runs."""


class BackendNotFoundError(ConfigurationError):
    """The requested backend is not installed."""


class BackendUnavailableError(SagetwinError):
    """The backend is installed but cannot run here (no Docker, no credentials, ...)."""


class TrainingError(SagetwinError):
    """The training script ran and failed."""

    def __init__(self, problem: str, fix: str = "", *, exit_code: int | None = None, log_tail: str = "") -> None:
        self.exit_code = exit_code
        self.log_tail = log_tail
        super().__init__(problem, fix, details=log_excerpt("the training log", log_tail))


class EndpointError(SagetwinError):
    """An endpoint failed to start, answered with an error, or no longer exists."""


class EndpointNotFoundError(EndpointError):
    """The endpoint was already deleted (or never existed)."""


class InvocationError(EndpointError):
    """The endpoint answered an invocation with an HTTP error (e.g. 400 for a bad body)."""

    def __init__(self, problem: str, fix: str = "", *, status: int, body: str) -> None:
        self.status = status
        self.body = body
        super().__init__(problem, fix)
