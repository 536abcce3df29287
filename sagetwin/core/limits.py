"""SageMaker's name rules and limits, checked on every backend and worded as the service words
them: an offline run refuses what AWS would refuse, before anything touches the disk."""

from __future__ import annotations

import json
import re
from typing import Any

from sagetwin.core.errors import ConfigurationError

NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"  # training jobs, models, endpoints, endpoint configs
CHANNEL_PATTERN = r"[A-Za-z0-9\.\-_]+"
MAX_CHANNEL_NAME = 64
MAX_HYPERPARAMETERS = 100
MAX_HYPERPARAMETER_KEY = 256
MAX_HYPERPARAMETER_VALUE = 2500
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's request body
INVOCATION_TIMEOUT_S = 60.0  # how long SageMaker waits for the container's answer
# SageMaker Runtime's words when the container did not answer in time (ModelError, OriginalStatusCode 0)
INVOCATION_TIMED_OUT = ("Your invocation timed out while waiting for a response from container primary. Review the "
                        "latency metrics for each container in Amazon CloudWatch, resolve the issue, and try again.")


def _validation(value: str, field: str, constraint: str) -> str:
    return (f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: "
            f"{constraint}")


def check_resource_name(name: str, field: str) -> str:
    """A training job, model or endpoint name (``field``: trainingJobName, endpointName, ...)."""
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        raise ConfigurationError(
            _validation(str(name), field, f"Member must satisfy regular expression pattern: {NAME_PATTERN}"),
            "use 1-63 letters, digits and hyphens, starting with a letter or digit (no '/', '.', '_' or spaces).")
    return name


def check_channel_names(channels: dict[str, Any]) -> None:
    for index, name in enumerate(channels, start=1):
        field = f"inputDataConfig.{index}.member.channelName"
        if len(name) > MAX_CHANNEL_NAME:
            raise ConfigurationError(
                _validation(name, field, f"Member must have length less than or equal to {MAX_CHANNEL_NAME}"),
                f"use a channel name of at most {MAX_CHANNEL_NAME} characters.")
        if not re.fullmatch(CHANNEL_PATTERN, name):
            raise ConfigurationError(
                _validation(name, field, f"Member must satisfy regular expression pattern: {CHANNEL_PATTERN}"),
                "use letters, digits, '.', '-' and '_' only, e.g. fit({'train': ..., 'test': ...}).")


def check_hyperparameter_limits(hyperparameters: dict[str, Any]) -> None:
    """SageMaker's limits on the JSON-encoded hyperparameters the SDK sends."""
    if len(hyperparameters) > MAX_HYPERPARAMETERS:
        raise ConfigurationError(
            f"1 validation error detected: Value at 'hyperParameters' failed to satisfy constraint: Member must "
            f"have length less than or equal to {MAX_HYPERPARAMETERS} (it has {len(hyperparameters)}).",
            "pass fewer hyperparameters, e.g. a JSON config file in source_dir.")
    for key, value in hyperparameters.items():
        encoded = json.dumps(value)
        if len(key) > MAX_HYPERPARAMETER_KEY:
            raise ConfigurationError(
                _validation(key[:40] + "...", "hyperParameters", "Map keys must satisfy constraint: [Member must "
                            f"have length less than or equal to {MAX_HYPERPARAMETER_KEY}]"),
                f"use hyperparameter names of at most {MAX_HYPERPARAMETER_KEY} characters.")
        if len(encoded) > MAX_HYPERPARAMETER_VALUE:
            raise ConfigurationError(
                _validation(f"{key}={encoded[:40]}...", "hyperParameters", "Map value must satisfy constraint: "
                            f"[Member must have length less than or equal to {MAX_HYPERPARAMETER_VALUE}]"),
                "ship large values as a file in source_dir or an input channel instead.")


def payload_too_large(size: int) -> str:
    return (f"1 validation error detected: Value at 'body' failed to satisfy constraint: Member must have "
            f"length less than or equal to {MAX_PAYLOAD_BYTES} (the request body has {size} bytes)")


# The model server and runtime front on 127.0.0.1 (sagetwin/emulation/http_server.py). SageMaker's
# front end bounds what one client can hold; so do these, sized so that normal use never meets them:
# the benches run 16 concurrent clients, the SDK keeps a pool of at most 10 keep-alive connections
# per client, and a 1-worker model answers one request at a time anyway.
SERVER_MAX_CONNECTIONS = 128  # served at once, one thread each; one more gets a 503 at once, no thread
SERVER_MAX_BUFFERED_BYTES = 64 * 1024 * 1024  # large bodies held at once across requests (ten of 6 MB)
SERVER_SMALL_BODY_BYTES = 64 * 1024  # bodies up to this size never wait for that budget (<= 8 MB in all)
SERVER_BODY_WAIT_S = 2.0  # a large body waits this long for room in the budget, then 503
SERVER_REQUEST_DEADLINE_S = INVOCATION_TIMEOUT_S  # headers + body from the first byte, however they trickle
SERVER_READ_TIMEOUT_S = INVOCATION_TIMEOUT_S  # silence allowed between reads, or before a kept-alive request
SERVER_MAX_HEADER_BYTES = 64 * 1024  # all header lines of one request (the stdlib allows 100 x 64 KB)
