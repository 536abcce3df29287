"""The environment that makes ``breakpoint()`` in a job's script or ``inference.py`` reach pdb on
this terminal (see ``debug_hook/sagetwin_debugger.py``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HOOK_DIR = Path(__file__).with_name("debug_hook")


def terminal() -> str:
    """The terminal this program was started from ('' when there is none: CI, a pipe, a service)."""
    try:
        return os.ttyname(sys.stdin.fileno()) if sys.stdin.isatty() else ""
    except (OSError, ValueError, AttributeError):
        return ""


def debugger_env(base: dict[str, str]) -> dict[str, str]:
    """Variables to add to a child's environment ``base``; a PYTHONBREAKPOINT of the person's own
    (``0`` to skip breakpoints, another debugger) is left alone."""
    if base.get("PYTHONBREAKPOINT"):
        return {}
    path = os.pathsep.join(filter(None, [base.get("PYTHONPATH"), str(HOOK_DIR)]))
    return {"PYTHONBREAKPOINT": "sagetwin_debugger.set_trace", "PYTHONPATH": path, "SAGETWIN_TTY": terminal()}
