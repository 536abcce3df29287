"""SageMaker endpoints: invoking one, waiting for InService, and the registry behind
``sagetwin endpoints`` (found by tag, with age and hourly cost). One teardown for all of them."""

from __future__ import annotations

import time
from typing import Any

from sagetwin.backends.sagemaker.pricing import hourly_price
from sagetwin.core.errors import EndpointError, InvocationError
from sagetwin.core.progress import Reporter
from sagetwin.sagemaker_sdk.boto import MANAGED_TAG, botocore_config


class SageMakerEndpoint:
    """An endpoint on SageMaker; deleting it also deletes its config and model."""

    def __init__(self, name: str, session: Any, instance_type: str, count: int) -> None:
        self.name = name
        self.session = session
        self.instance_type = instance_type
        self.count = count
        self.deleted = False

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        from botocore.exceptions import ClientError

        try:
            response = self.session.sagemaker_runtime_client.invoke_endpoint(
                EndpointName=self.name, Body=body, ContentType=content_type, Accept=accept)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = int(exc.response.get("OriginalStatusCode") or exc.response.get("ResponseMetadata", {})
                         .get("HTTPStatusCode", 400))
            raise InvocationError(f"endpoint {self.name} answered {status}: {error.get('Message', exc)}",
                                  'send JSON such as {"inputs": "text"} with content type application/json.',
                                  status=status, body=str(exc.response.get("OriginalMessage", ""))) from None
        return response["Body"].read(), response.get("ContentType", "application/json")

    def delete(self) -> None:
        if not self.deleted:
            delete_endpoint(self.session.sagemaker_client, self.name)
            self.deleted = True


def _missing(exc: Exception) -> bool:
    """SageMaker answers ValidationException "Could not find ..." for what does not exist; any other
    ValidationException (or error) means the resource may still be there."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    return error.get("Code") == "ResourceNotFound" or (
        error.get("Code") == "ValidationException" and "could not find" in error.get("Message", "").lower())


def delete_endpoint(client: Any, name: str) -> None:
    """Delete an endpoint, its endpoint config and its model(s); what is already gone is skipped."""
    config_name, models = name, [name]
    try:
        config_name = client.describe_endpoint(EndpointName=name)["EndpointConfigName"]
        variants = client.describe_endpoint_config(EndpointConfigName=config_name).get("ProductionVariants", [])
        models = [v["ModelName"] for v in variants if v.get("ModelName")] or models
    except Exception as exc:
        if not _missing(exc):
            raise
    for call, kwargs in ((client.delete_endpoint, {"EndpointName": name}),
                         (client.delete_endpoint_config, {"EndpointConfigName": config_name}),
                         *((client.delete_model, {"ModelName": model}) for model in models)):
        try:
            call(**kwargs)
        except Exception as exc:
            if not _missing(exc):
                raise


def wait_in_service(client: Any, name: str, timeout: float, reporter: Reporter) -> None:
    """Poll quickly at first, then every 30 s (endpoint creation usually takes minutes)."""
    deadline = time.monotonic() + timeout
    delay = 1.0
    last = None
    while True:
        status = client.describe_endpoint(EndpointName=name)["EndpointStatus"]
        if status != last:
            reporter.step(f"sagemaker: endpoint {name} is {status}")
            last = status
        if status == "InService":
            return
        if status in ("Failed", "OutOfService", "Deleting"):
            raise EndpointError(f"endpoint {name} is {status}.", "see its FailureReason.")
        if time.monotonic() > deadline:
            raise EndpointError(f"endpoint {name} was not InService after {timeout:.0f}s.",
                                "raise startup_timeout, or check the endpoint's CloudWatch logs.")
        time.sleep(delay)
        delay = min(delay * 2, 30.0)


def managed_endpoints(boto: Any) -> list[dict[str, Any]]:
    """Endpoints this tool created (by tag), with age and hourly cost."""
    client = boto.client("sagemaker", config=botocore_config())
    found = []
    for page in client.get_paginator("list_endpoints").paginate():
        for endpoint in page["Endpoints"]:
            tags = {t["Key"]: t["Value"] for t in client.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]}
            if tags.get(MANAGED_TAG) == "true":
                found.append(_registry_row(client, endpoint))
    return found


def _registry_row(client: Any, endpoint: dict[str, Any]) -> dict[str, Any]:
    description = client.describe_endpoint(EndpointName=endpoint["EndpointName"])
    variants = client.describe_endpoint_config(EndpointConfigName=description["EndpointConfigName"])[
        "ProductionVariants"]
    prices = [(hourly_price(v.get("InstanceType", "")), v.get("InitialInstanceCount", 1)) for v in variants]
    known = all(price is not None for price, _ in prices)
    hourly = sum((price or 0.0) * count for price, count in prices)
    age_h = (time.time() - endpoint["CreationTime"].timestamp()) / 3600
    return {"name": endpoint["EndpointName"], "status": endpoint["EndpointStatus"], "age_hours": round(age_h, 2),
            "hourly_usd": round(hourly, 3) if known else None,
            "instances": [f"{v.get('InitialInstanceCount', 1)} x {v.get('InstanceType')}" for v in variants]}
