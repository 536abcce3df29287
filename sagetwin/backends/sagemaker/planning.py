"""What a SageMaker launch will start and can cost, and whether the account's quota allows it:
said (and confirmed by the CLI) before anything is launched."""

from __future__ import annotations

from typing import Any

from sagetwin.backends.sagemaker.pricing import CostLine, hourly_price
from sagetwin.core.errors import ConfigurationError
from sagetwin.core.spec import DeploySpec, TrainingSpec
from sagetwin.core.versions import Stack

TRAINING_INSTANCE = "ml.p3.2xlarge"
ENDPOINT_INSTANCE = "ml.g4dn.xlarge"


def launch_plan(training: TrainingSpec | None, endpoint_instance_type: str | None = None, *,
                endpoint_count: int = 1, spot: bool = False, max_wait: int | None = None) -> list[CostLine]:
    lines = []
    if training is not None:
        instance = training.instance_type or TRAINING_INSTANCE
        hours = (max_wait or training.max_run) / 3600
        lines.append(CostLine("training" + (" (spot)" if spot else ""), instance, training.instance_count,
                              hourly_price(instance), hours))
    if endpoint_instance_type is not None or training is not None:
        instance = endpoint_instance_type or ENDPOINT_INSTANCE
        lines.append(CostLine("endpoint", instance, endpoint_count, hourly_price(instance), None))
    return lines


def check_quota(boto: Any, instance_type: str, count: int, usage: str) -> None:
    """Say 'no quota' before launching, where Service Quotas can tell (often 0 for p3 training)."""
    try:
        from botocore.config import Config

        # One quick try: this check is advisory, SageMaker itself enforces the quota.
        client = boto.client("service-quotas", config=Config(
            retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=10))
        wanted = f"{instance_type} for {usage}"
        for page in client.get_paginator("list_service_quotas").paginate(ServiceCode="sagemaker"):
            for quota in page.get("Quotas", []):
                if quota.get("QuotaName") == wanted and quota.get("Value", 1) < count:
                    raise ConfigurationError(
                        f"your account's quota '{wanted}' is {quota['Value']:g}, but {count} instance(s) are needed.",
                        "request an increase in the Service Quotas console (SageMaker), or pick another "
                        "instance type with instance_type=.",
                    )
    except ConfigurationError:
        raise
    except Exception:
        return  # quota API unavailable or not permitted: SageMaker itself will say ResourceLimitExceeded


def sdk_versions(spec: TrainingSpec | DeploySpec, stack: Stack) -> dict[str, str]:
    """The versions as given (an alias stays one): the SDK then asks for the image its own estimator would."""
    return {"transformers_version": spec.transformers_version or stack.transformers,
            "pytorch_version": spec.pytorch_version or stack.pytorch, "py_version": spec.py_version or stack.py}
