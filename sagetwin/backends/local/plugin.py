"""The local plugin's hook implementations: its backend, its doctor items, `image build`."""

from __future__ import annotations

from sagetwin.core.hookspecs import hookimpl


@hookimpl
def sagetwin_register_backends(register):
    from sagetwin.backends.local.backend import LocalBackend

    register(LocalBackend)


@hookimpl
def sagetwin_doctor_checks() -> list:
    from sagetwin.backends.local.doctor import doctor_checks

    return doctor_checks()


@hookimpl
def sagetwin_register_commands(subparsers):
    from sagetwin.backends.local import commands

    commands.register(subparsers)
