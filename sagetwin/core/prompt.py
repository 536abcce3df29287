"""The one y/N question sagetwin ever asks, for the CLI and for reporters alike."""

from __future__ import annotations

import sys

from sagetwin.core.errors import ConfigurationError


def confirm(question: str, *, default: bool = False, without_terminal: bool | None = None,
            no_terminal_fix: str = "rerun with --yes.") -> bool:
    """Ask on the terminal; an empty answer is ``default``. Without a terminal the answer is
    ``without_terminal``, or (None) a clear error: nothing billed starts or stops unasked."""
    if not sys.stdin.isatty():
        if without_terminal is not None:
            return without_terminal
        raise ConfigurationError(f"{question.rstrip('?')}: this needs a confirmation and there is no terminal.",
                                 no_terminal_fix)
    try:
        answer = input(f"{question} [{'Y/n' if default else 'y/N'}] ").strip().lower()
    except EOFError:
        return default
    return default if not answer else answer in ("y", "yes")
