"""Run a script under an audit hook: record the files it opens, refuse network access.

``python -m sagetwin.backends.process.audit RECORD.json SCRIPT [ARGS...]`` runs SCRIPT as ``__main__``
and writes ``{"opened": [[path, mode], ...], "network": [...]}`` to RECORD.json on exit.
Connections to anything but loopback raise, as they would in a SageMaker job without internet.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import runpy
import socket
import sys

_SKIP_PREFIXES = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix, "/usr/lib", "/usr/share", "/proc",
                        "/sys", "/dev", "/etc"})


def _loopback(host: object) -> bool:
    if not isinstance(host, str) or host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> None:
    record_path, script, *args = sys.argv[1:]
    own_record = os.path.abspath(record_path)
    opened: dict[str, str] = {}
    network: list[str] = []

    def hook(event: str, hook_args: tuple) -> None:
        if event == "open":
            path, mode = hook_args[0], hook_args[1]
            if isinstance(path, (str, bytes)):
                path = os.path.abspath(os.fsdecode(path))
                if path != own_record and not path.startswith(_SKIP_PREFIXES) and "site-packages" not in path:
                    previous = opened.get(path, "")
                    opened[path] = previous if "w" in previous or "a" in previous else str(mode or "r")
        elif event == "socket.getaddrinfo" and not _loopback(hook_args[0]):
            network.append(f"{hook_args[0]}:{hook_args[1]}")
            raise socket.gaierror(f"sagetwin check: network access to {hook_args[0]} is blocked")
        elif event == "socket.connect":
            address = hook_args[1]
            host = address[0] if isinstance(address, tuple) else address
            if not _loopback(host):
                network.append(str(address))
                raise ConnectionRefusedError(f"sagetwin check: network access to {address} is blocked")

    def write_record() -> None:
        with open(record_path, "w") as handle:
            json.dump({"opened": sorted(opened.items()), "network": network}, handle)

    atexit.register(write_record)
    sys.addaudithook(hook)
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
