"""The process plugin's hook implementations: its backend and the `check` command."""

from __future__ import annotations

from sagetwin.core.hookspecs import hookimpl


@hookimpl
def sagetwin_register_backends(register):
    from sagetwin.backends.process.backend import ProcessBackend

    register(ProcessBackend)


@hookimpl
def sagetwin_register_commands(subparsers):
    from sagetwin.backends.process import commands

    commands.register(subparsers)
