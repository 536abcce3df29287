"""The sagemaker plugin's hook implementations: its backend and the `endpoints` command."""

from __future__ import annotations

from sagetwin.core.hookspecs import hookimpl


@hookimpl
def sagetwin_register_backends(register):
    from sagetwin.backends.sagemaker.backend import SageMakerBackend

    register(SageMakerBackend)


@hookimpl
def sagetwin_register_commands(subparsers):
    from sagetwin.backends.sagemaker import commands

    commands.register(subparsers)
