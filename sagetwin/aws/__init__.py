"""The AWS twin: the SageMaker, S3, STS, IAM and CloudWatch Logs APIs on 127.0.0.1, with
training jobs and endpoints carried out for real by an offline backend.

In a notebook or script, one line before the SageMaker SDK code::

    import sagetwin.aws
    twin = sagetwin.aws.start(backend="process")   # or: with sagetwin.aws.start(): ...

From a shell: ``sagetwin exec -- python my_sdk_script.py`` or ``sagetwin aws``.
"""

from __future__ import annotations

import os
from typing import Any

from sagetwin.aws.twin import Twin, cleared

__all__ = ["Twin", "InProcessTwin", "start"]


class InProcessTwin(Twin):
    """A twin whose environment is this process's own while it runs: the cells after
    ``start()`` run unchanged, and ``stop()`` gives the environment back as it was."""

    _saved: dict[str, str | None]

    def start(self) -> InProcessTwin:
        super().start()
        from sagetwin.aws import client_hook

        environment = self.environment()
        removed = set(os.environ) - set(cleared(dict(os.environ)))
        self._saved = {name: os.environ.get(name) for name in [*environment, *removed]}
        for name in removed:
            del os.environ[name]
        os.environ.update(environment)
        _forget_default_boto3_session()
        client_hook.install(self.url)
        return self

    def stop(self) -> None:
        from sagetwin.aws import client_hook

        try:
            super().stop()
        finally:
            client_hook.uninstall()
            for name, value in getattr(self, "_saved", {}).items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            _forget_default_boto3_session()


def _forget_default_boto3_session() -> None:
    """boto3's default session keeps the credentials it read first: after the environment changes
    (this twin's credentials in, or out again), clients made with ``boto3.client(...)`` and the
    SDK's ``Session()`` must read it again, not sign with another twin's expired keys."""
    import sys

    boto3 = sys.modules.get("boto3")
    if boto3 is not None:
        boto3.DEFAULT_SESSION = None


def start(backend: str = "process", *, port: int = 0, region: str = "us-east-1", persist: bool = True,
          interrupt_spot: str | None = None, **backend_options: Any) -> InProcessTwin:
    """Start a twin in the background and point this process's AWS clients at it;
    ``interrupt_spot`` (e.g. ``"30s"``) rehearses a spot interruption in each spot job."""
    return InProcessTwin(backend, port=port, region=region, persist=persist, backend_options=backend_options,
                         interrupt_spot=interrupt_spot).start()
