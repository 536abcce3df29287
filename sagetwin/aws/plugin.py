"""The twin's hook implementations: the ``aws`` and ``exec`` commands, the endpoints of the
twins running on this machine for ``sagetwin endpoints``, and what killed twins left, for
``sagetwin doctor``."""

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


@hookimpl
def sagetwin_doctor_checks():
    from sagetwin.aws.listing import leftovers_check

    return [leftovers_check()]
