"""`sagetwin check`'s network guard for every Python process of the job, not only the script's:
Python imports ``sitecustomize`` at start-up, and this folder is on the job's ``PYTHONPATH``
during a check, so workers, launchers and ``subprocess`` children are guarded too (forked
workers keep the hook). Programs that are not Python cannot be guarded: their launches are
recorded so the check can say what it did not see. Standard library only: it runs in any Python
the job uses.

``SAGETWIN_AUDIT_NETWORK``: file that gets one line per refused connection.
``SAGETWIN_AUDIT_SPAWNS``: file that gets one line per program started.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys


def _loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None or host in ("localhost", ""):
        return True
    if not isinstance(host, str):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _append(variable: str, line: str) -> None:
    path = os.environ.get(variable)
    if path:
        try:
            with open(path, "a", encoding="utf-8") as record:
                record.write(line.replace("\n", " ") + "\n")
        except OSError:  # the record is lost (a full disk): the job itself goes on as it would
            pass


def _program(event: str, args: tuple) -> str | None:
    if event == "subprocess.Popen":
        return os.fsdecode(args[0]) if args[0] else (os.fsdecode(args[1][0]) if args[1] else None)
    if event in ("os.exec", "os.posix_spawn"):
        return os.fsdecode(args[0])
    if event == "os.system":
        return "/bin/sh -c " + os.fsdecode(args[0])
    return None


def _guard(event: str, args: tuple) -> None:
    if event == "socket.getaddrinfo" and not _loopback(args[0]):
        host = args[0].decode("ascii", "replace") if isinstance(args[0], bytes) else args[0]
        _append("SAGETWIN_AUDIT_NETWORK", f"{host}:{args[1]}")
        raise socket.gaierror(f"sagetwin check: network access to {host} is blocked")
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        if getattr(args[0], "family", None) == getattr(socket, "AF_UNIX", None):
            return  # a local socket file (multiprocessing managers, forkservers): not the network
        address = args[1]
        if address is None:  # sendmsg on a connected socket: its connect was checked
            return
        host = address[0] if isinstance(address, tuple) else address
        if not _loopback(host):
            _append("SAGETWIN_AUDIT_NETWORK", str(address))
            raise ConnectionRefusedError(f"sagetwin check: network access to {address} is blocked")
    program = _program(event, args)
    if program:
        _append("SAGETWIN_AUDIT_SPAWNS", program)


if os.environ.get("SAGETWIN_AUDIT_NETWORK"):
    sys.addaudithook(_guard)
