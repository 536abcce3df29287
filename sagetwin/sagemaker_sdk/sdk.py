"""The SageMaker Python SDK v2, imported and held the way sagetwin needs it: quiet, telemetry
off, Ctrl-C kept, the person's logging left alone, config validated once. Shared by the local
and sagemaker backends."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

# SDK defaults config given to each Session we build: no telemetry call on every operation.
SDK_CONFIG: dict[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}


def import_sdk() -> Any:
    """Import the SageMaker SDK v2 quietly (its v2 deprecation banner is not news to our users)."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    import logging
    import sys

    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    logging.getLogger("botocore.configprovider").setLevel(logging.WARNING)
    if "sagemaker" not in sys.modules:
        # Importing the SDK builds a default Session (sagemaker.jumpstart.constants), which walks the
        # credential chain; without credentials that ends probing the EC2 metadata service over the
        # network. Keep that probe off for the import only: our own sessions still use instance roles.
        with no_metadata_probe():
            import sagemaker  # noqa: F401
    if "sagemaker.experiments" not in sys.modules:
        # Imported by Estimator.fit, it calls logging.basicConfig(level=INFO) for the whole process
        # (sagemaker/experiments/_metrics.py): import it now, and leave the person's logging as it was.
        with root_logging_kept():
            import sagemaker.experiments  # noqa: F401
    _validate_each_config_once()
    return sys.modules["sagemaker"]


@contextlib.contextmanager
def root_logging_kept() -> Iterator[None]:
    """Undo a library's logging.basicConfig: handlers and level of the root logger stay as they were."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)


@contextlib.contextmanager
def interrupts_kept() -> Iterator[None]:
    """SDK v2's telemetry decorator (around fit, deploy, ...) returns from a ``finally:`` block, which
    silently drops a KeyboardInterrupt raised inside the call: Ctrl-C during local training or while
    an endpoint starts would be lost and the run carry on. Remember the interrupt and raise it
    again when the SDK returns. Only Python-level handlers (Ctrl-C's, the CLI's SIGTERM) are wrapped."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[BaseException] = []
    previous: dict[int, Callable[..., Any]] = {}

    def remember(signum: int, frame: Any) -> None:
        try:
            previous[signum](signum, frame)
        except BaseException as exc:
            caught.append(exc)
            raise

    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if callable(handler):
            previous[signum] = handler
            signal.signal(signum, remember)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if caught:
        raise caught[0]


def _validate_each_config_once() -> None:
    """The SDK checks its whole defaults config against its JSON schema (the schema itself included)
    at session creation and on every config lookup: 0.14 s each, about 30 times per local deploy, 4 s
    of a 2-core laptop spent before the container even starts."""
    import importlib

    import sagemaker.config.config as config_module

    original = config_module.validate_sagemaker_config
    if hasattr(original, "__wrapped__"):
        return
    remembering = remember_valid_configs(original)
    for name in ("sagemaker.config.config", "sagemaker.config", "sagemaker.session", "sagemaker.utils",
                 "sagemaker.local.local_session"):
        module = importlib.import_module(name)
        if getattr(module, "validate_sagemaker_config", None) is original:
            module.validate_sagemaker_config = remembering


def remember_valid_configs(validate: Callable[[Any], None]) -> Callable[[Any], None]:
    """Validation is pure: a config that passed once passes again, and any other is still checked
    (and still raises)."""
    import functools
    import json

    valid: set[str] = set()

    @functools.wraps(validate)
    def validate_once(config: Any = None) -> None:
        key = json.dumps(config, sort_keys=True, default=repr)
        if key not in valid:
            validate(config)
            valid.add(key)

    return validate_once


@contextlib.contextmanager
def no_metadata_probe() -> Iterator[None]:
    """Switch the EC2 instance-metadata credential probe off for a while (it is a network call)."""
    saved = os.environ.get("AWS_EC2_METADATA_DISABLED")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AWS_EC2_METADATA_DISABLED", None)
        else:
            os.environ["AWS_EC2_METADATA_DISABLED"] = saved
