"""What commands share with the person at the terminal: one y/N question, ``-o KEY=VALUE``
options, checklists, and stdout kept for JSON. The core CLI and plugin commands both use it."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterable, Iterator

from sagetwin.core.backend import Check
from sagetwin.core.errors import ConfigurationError
from sagetwin.core.prompt import confirm

__all__ = ["ask_before_launch", "confirm", "parse_options", "print_checks", "stdout_to_stderr"]


def parse_options(pairs: list[str] | None) -> dict[str, object]:
    """``-o key=value`` pairs for a backend's constructor; values are JSON when they parse as JSON."""
    options: dict[str, object] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"backend option {pair!r} is not KEY=VALUE.", "write e.g. -o bucket=my-bucket.")
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except ValueError:
            options[key.replace("-", "_")] = value
    return options


def print_checks(items: Iterable[Check], *, as_json: bool) -> None:
    items = list(items)
    if as_json:
        print(json.dumps([item.as_dict() for item in items], indent=2))
    else:
        for item in items:
            print(item.render())


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Keep stdout for the one JSON document: anything else printed (even by plugins) goes to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def ask_before_launch(plan: list[str]) -> bool:
    """Paid resources are launched only after a person says yes (or passes --yes)."""
    if not sys.stdin.isatty():
        raise ConfigurationError(
            "this backend launches billed resources and there is no terminal to confirm: " + "; ".join(plan) + ".",
            "rerun with --yes once the plan above is what you want.",
        )
    print("This will launch billed resources:\n  " + "\n  ".join(plan), file=sys.stderr)
    return confirm("Continue?")
