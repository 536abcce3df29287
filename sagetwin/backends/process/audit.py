"""Run a script under an audit hook: record the files it opens.

``python -m sagetwin.backends.process.audit RECORD.json SCRIPT [ARGS...]`` runs SCRIPT as ``__main__``
and writes ``{"opened": [[path, mode], ...]}`` to RECORD.json on exit. Network access is refused
for the whole job by ``audit_site/sitecustomize.py`` (this process and every Python it starts).
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys

_SKIP_PREFIXES = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix, "/usr/lib", "/usr/share", "/proc",
                        "/sys", "/dev", "/etc"})


def main() -> None:
    record_path, script, *args = sys.argv[1:]
    own_record = os.path.abspath(record_path)
    opened: dict[str, str] = {}

    def hook(event: str, hook_args: tuple) -> None:
        if event == "open":
            path, mode = hook_args[0], hook_args[1]
            if isinstance(path, (str, bytes)):
                path = os.path.abspath(os.fsdecode(path))
                ours = path.startswith(own_record)  # this record and the network guard's beside it
                if not ours and not path.startswith(_SKIP_PREFIXES) and "site-packages" not in path:
                    previous = opened.get(path, "")
                    opened[path] = previous if "w" in previous or "a" in previous else str(mode or "r")

    def write_record() -> None:
        with open(record_path, "w") as handle:
            json.dump({"opened": sorted(opened.items())}, handle)

    atexit.register(write_record)
    sys.addaudithook(hook)
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
