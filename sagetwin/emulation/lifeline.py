"""Runs a command and ends its whole process group when the process that started it dies.

``python -I -S lifeline.py FD -- COMMAND...`` (a script: starting it imports nothing). FD is the
read end of a pipe whose write end only the starting process holds. The kernel closes it when that process ends, however
it ends (SIGKILL included), which no thread-bound ``PR_SET_PDEATHSIG`` and no ``preexec_fn``
(unsafe after fork in a threaded program) can promise. Exits with the command's exit code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading


def _end_group_when_parent_goes(fd: int) -> None:
    try:
        while os.read(fd, 1):
            pass
    except OSError:
        pass
    os.killpg(os.getpgid(0), signal.SIGTERM)  # the command and anything it started; this process too


def main(argv: list[str]) -> int:
    fd, separator, *command = argv
    if separator != "--" or not command:
        print("usage: python lifeline.py FD -- COMMAND...", file=sys.stderr)
        return 2
    threading.Thread(target=_end_group_when_parent_goes, args=(int(fd),), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))  # the group's SIGTERM ends this wrapper as well
    try:
        code = subprocess.call(command)
    except FileNotFoundError as exc:
        print(f"sagetwin: cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell reports it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
