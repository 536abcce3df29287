"""``breakpoint()`` in a script sagetwin runs in a subprocess: pdb on the terminal sagetwin was
started from, or, with no terminal, an immediate error instead of a job that waits forever.

Standard library only, on ``PYTHONPATH`` as a top-level module: it works in any Python a job
runs with (the host's or a stack's own environment). The script's stdin stays closed, as in a
SageMaker container; only the debugger talks to the terminal, opened by name.
"""

from __future__ import annotations

import os
import pdb
import sys
import time

TTY = "SAGETWIN_TTY"
MARKER = "[sagetwin-debugger]"  # tells sagetwin to pause its progress display while pdb runs


def set_trace(*args: object, **kwargs: object) -> None:
    frame = sys._getframe(1)
    where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
    terminal = os.environ.get(TTY)
    if not terminal:
        raise RuntimeError(
            f"breakpoint() at {where}: sagetwin is not running on a terminal, so nobody could answer the "
            "debugger and the job would wait forever. Run sagetwin from a terminal to debug here, or set "
            "PYTHONBREAKPOINT=0 to skip breakpoints.")
    print(f"{MARKER} breakpoint() at {where}: pdb is on your terminal ('c' continues, 'q' stops the job)",
          flush=True)
    time.sleep(0.3)  # sagetwin relays that line (and pauses its progress bar) before pdb's first prompt
    try:
        reader, writer = _terminal(terminal)
    except OSError as exc:
        raise RuntimeError(f"breakpoint() at {where}: the terminal {terminal} cannot be opened ({exc}). Run sagetwin "
                           "from a terminal to debug here, or set PYTHONBREAKPOINT=0 to skip breakpoints.") from None
    pdb.Pdb(stdin=reader, stdout=writer).set_trace(frame)


_opened: dict[str, tuple] = {}


def _terminal(name: str) -> tuple:
    """The terminal opened once per process (a loop over a breakpoint() must not use up descriptors)."""
    if name not in _opened:
        fd = os.open(name, os.O_RDWR | os.O_NOCTTY)
        _opened[name] = (os.fdopen(fd, "r", encoding="utf-8"),
                         os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8"))
    return _opened[name]
