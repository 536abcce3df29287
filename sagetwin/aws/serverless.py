"""Serverless variants (``ServerlessConfig``): the model is served on the backend like any
endpoint's, on CPU, with the limits a serverless endpoint has — 4 MB payloads, at most
``MaxConcurrency`` invocations at once (beyond it the runtime's ``ThrottlingException``), and
``MemorySizeInMB`` one of 1024…6144 in steps of 1024."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sagetwin.aws.refusals import invoke_too_large
from sagetwin.aws.replies import Reply, service_error
from sagetwin.core.errors import InvocationError

MAX_SERVERLESS_PAYLOAD_BYTES = 4 * 1024 * 1024
MEMORY_SIZES_MB = (1024, 2048, 3072, 4096, 5120, 6144)
MAX_CONCURRENCY = 200


def serverless_config_problem(index: int, variant: dict[str, Any]) -> str | None:
    """What CreateEndpointConfig refuses in a serverless variant, in the service's words."""
    config = variant.get("ServerlessConfig")
    if config is None:
        return None
    field = f"productionVariants.{index}.member.serverlessConfig"
    memory, concurrency = config.get("MemorySizeInMB"), config.get("MaxConcurrency")
    if memory not in MEMORY_SIZES_MB:
        return (f"1 validation error detected: Value '{memory}' at '{field}.memorySizeInMB' failed to satisfy "
                f"constraint: Member must be one of {list(MEMORY_SIZES_MB)} (MemorySizeInMB is 1024 to 6144 in "
                "steps of 1024).")
    if not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
        return (f"1 validation error detected: Value '{concurrency}' at '{field}.maxConcurrency' failed to satisfy "
                f"constraint: Member must have value between 1 and {MAX_CONCURRENCY}")
    provisioned = config.get("ProvisionedConcurrency")
    if provisioned is not None and not 1 <= provisioned <= concurrency:
        return (f"ProvisionedConcurrency ({provisioned}) must be between 1 and the variant's MaxConcurrency "
                f"({concurrency}).")
    if variant.get("InstanceType") or variant.get("InitialInstanceCount"):
        return (f"Variant {variant.get('VariantName', index)} has a ServerlessConfig and also InstanceType or "
                "InitialInstanceCount; a serverless variant takes neither.")
    return None


@dataclass
class ServerlessGate:
    """The runtime's checks in front of a serverless endpoint's model."""

    memory_mb: int
    max_concurrency: int

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_concurrency)

    @classmethod
    def of(cls, variant: dict[str, Any]) -> ServerlessGate | None:
        config = variant.get("ServerlessConfig")
        return None if config is None else cls(config["MemorySizeInMB"], config["MaxConcurrency"])

    def too_large(self, body: bytes) -> Reply | None:
        if len(body) <= MAX_SERVERLESS_PAYLOAD_BYTES:
            return None
        refused = invoke_too_large(len(body), MAX_SERVERLESS_PAYLOAD_BYTES)
        return Reply(refused.status, refused.body, refused.headers)

    @staticmethod
    def answer_too_large(answer: bytes) -> InvocationError | None:
        """The 4 MB limit holds for the response too: an answer over it fails the invocation
        (the runtime's wording for this case is not documented; the limit is)."""
        if len(answer) <= MAX_SERVERLESS_PAYLOAD_BYTES:
            return None
        message = f"The response payload size ({len(answer)} bytes) exceeds the serverless limit of " \
                  f"{MAX_SERVERLESS_PAYLOAD_BYTES} bytes."
        return InvocationError(message, status=413, body=message)

    def enter(self) -> bool:
        """A slot for one invocation, or False: the endpoint is at its MaxConcurrency."""
        return self._slots.acquire(blocking=False)

    def leave(self) -> None:
        self._slots.release()

    @staticmethod
    def throttled() -> Reply:
        return service_error("ThrottlingException", "Rate exceeded", 400)
