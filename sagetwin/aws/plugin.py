"""The twin's hook implementations: the ``aws`` and ``exec`` commands."""

from __future__ import annotations

from sagetwin.core.hookspecs import hookimpl


@hookimpl
def sagetwin_register_commands(subparsers):
    from sagetwin.aws import commands

    commands.register(subparsers)
