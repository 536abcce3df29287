"""The twin's hook implementations: the ``aws`` and ``exec`` commands, and the endpoints of the
twins running on this machine for ``sagetwin endpoints``."""

from __future__ import annotations

from sagetwin.core.hookspecs import hookimpl


@hookimpl
def sagetwin_register_commands(subparsers):
    from sagetwin.aws import commands

    commands.register(subparsers)


@hookimpl
def sagetwin_endpoint_listers():
    from sagetwin.aws.listing import running_twin_listers

    return running_twin_listers()
