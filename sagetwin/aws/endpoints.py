"""``CreateEndpoint`` carried out for real: the model's archive from the twin's S3, served by
a backend; ``InvokeEndpoint`` forwarded to it; ``DeleteEndpoint`` stops it."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagetwin.aws.images import UnsupportedImage, stack_of
from sagetwin.aws.logs import LogShipper
from sagetwin.aws.s3 import MissingData, download_object
from sagetwin.aws.wsgi import Call, Reply, create_once, json_reply, listing_with_status, service_error
from sagetwin.core.backend import TakesCustomAttributes
from sagetwin.core.errors import InvocationError, SagetwinError
from sagetwin.core.job import create_backend
from sagetwin.core.paths import inside
from sagetwin.core.spec import DeploySpec
from sagetwin.emulation.archives import ArchiveError, NotAnArchive, check_archive
from sagetwin.emulation.http_endpoint import CUSTOM_ATTRIBUTES_HEADER


class EndpointFailed(Exception):
    """Ends an endpoint's creation as Failed with this message as its FailureReason."""


@dataclass
class TwinEndpoint:
    name: str
    status: str = "Creating"
    failure_reason: str | None = None
    served: Any = None  # the backend's Endpoint once InService
    lock: threading.Lock = field(default_factory=threading.Lock)
    updated: float = field(default_factory=time.time)


class ShipperReporter:
    """Deploy progress into the endpoint's CloudWatch log stream, as the service keeps one."""

    def __init__(self, shipper: LogShipper) -> None:
        self.shipper = shipper

    def step(self, message: str) -> None:
        self.shipper.write(message)

    def log(self, line: str) -> None:
        self.shipper.write(line)


class Endpoints:
    def __init__(self, clients: Any, work_dir: Path, backend: str, backend_options: dict[str, Any]) -> None:
        self.clients, self.work_dir = clients, work_dir
        self.backend, self.backend_options = backend, backend_options
        self.endpoints: dict[str, TwinEndpoint] = {}
        self._creating = threading.Lock()
        self._starters: list[threading.Thread] = []

    def operations(self) -> dict[str, Any]:
        return {"CreateEndpoint": self.create, "DescribeEndpoint": self.describe,
                "DeleteEndpoint": self.delete, "ListEndpoints": self.list}

    def create(self, call: Call) -> Reply:
        params = call.params()
        reply, endpoint = create_once(call, params.get("EndpointName", ""), "endpointName", self.endpoints,
                                      self._creating, self._taken, TwinEndpoint)
        if endpoint is not None:
            starter = threading.Thread(target=self._start, args=(endpoint, params.get("EndpointConfigName", "")),
                                       name=f"endpoint {endpoint.name}", daemon=True)
            self._starters.append(starter)
            starter.start()
        return reply

    def _taken(self, name: str) -> Reply:
        return service_error("ValidationException", "Cannot create already existing endpoint "
                             f'"arn:aws:sagemaker:{self.clients.region}:{self.clients.account}:endpoint/'
                             f'{name.lower()}".')

    def describe(self, call: Call) -> Reply:
        reply = call.pass_to_moto()
        endpoint = self.endpoints.get(call.params().get("EndpointName", ""))
        if not reply.ok or endpoint is None:
            return reply
        overlay: dict[str, Any] = {"EndpointStatus": endpoint.status, "LastModifiedTime": endpoint.updated}
        if endpoint.failure_reason:
            overlay["FailureReason"] = endpoint.failure_reason
        return json_reply({**reply.json(), **overlay})

    def list(self, call: Call) -> Reply:
        def status(name: str) -> dict[str, Any] | None:
            endpoint = self.endpoints.get(name)
            return None if endpoint is None else {"EndpointStatus": endpoint.status}

        return listing_with_status(call, "Endpoints", "EndpointName", status)

    def delete(self, call: Call) -> Reply:
        reply = call.pass_to_moto()
        if reply.ok:
            self._release(call.params().get("EndpointName", ""))
        return reply

    def delete_all(self, wait_s: float = 120.0) -> None:
        """Delete every endpoint; one still starting is stopped by its starter, which is waited for."""
        for name in list(self.endpoints):
            self._release(name)
        deadline = time.monotonic() + wait_s
        for starter in self._starters:
            starter.join(timeout=max(0.0, deadline - time.monotonic()))

    def invoke(self, name: str, call: Call) -> Reply:
        endpoint = self.endpoints.get(name)
        not_found = service_error("ValidationError", f"Endpoint {name} of account {self.clients.account} not found.")
        if endpoint is None:
            return not_found
        content_type = call.header("Content-Type", "application/json")
        accept = call.header("Accept", "application/json")
        attributes = call.header(CUSTOM_ATTRIBUTES_HEADER)
        try:
            with endpoint.lock:  # one keep-alive connection per endpoint; a delete waits for the call
                served = endpoint.served if endpoint.status == "InService" else None
                if served is None:
                    return not_found
                if attributes and isinstance(served, TakesCustomAttributes):
                    body, answer_type = served.invoke_with_attributes(call.body, content_type, accept, attributes)
                else:
                    body, answer_type = served.invoke(call.body, content_type, accept)
        except InvocationError as exc:
            return self._model_error(name, exc)
        except SagetwinError as exc:
            return self._model_error(name, InvocationError(exc.problem, status=500, body=exc.problem))
        return Reply(200, body, {"Content-Type": answer_type, "x-Amzn-Invoked-Production-Variant": "AllTraffic"})

    def _model_error(self, name: str, exc: InvocationError) -> Reply:
        """The service's ModelError: the model server's status and message, as AWS words them."""
        kind = "client" if 400 <= exc.status < 500 else "server"
        log_arn = (f"arn:aws:logs:{self.clients.region}:{self.clients.account}:log-group:"
                   f"/aws/sagemaker/Endpoints/{name}")
        message = (f'Received {kind} error ({exc.status}) from primary with message "{exc.body}". See '
                   f"https://{self.clients.region}.console.aws.amazon.com/cloudwatch/home?region="
                   f"{self.clients.region}#logEventViewer:group=/aws/sagemaker/Endpoints/{name} in account "
                   f"{self.clients.account} for more information.")
        payload = {"ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL", "LogStreamArn": log_arn, "Message": message,
                   "OriginalMessage": exc.body, "OriginalStatusCode": exc.status}
        return Reply(424, json.dumps(payload).encode(), {"Content-Type": "application/json",
                                                         "x-amzn-ErrorType": "ModelError"})

    def _start(self, endpoint: TwinEndpoint, config_name: str) -> None:
        shipper = LogShipper(self.clients.logs, f"/aws/sagemaker/Endpoints/{endpoint.name}",
                             f"AllTraffic/{int(time.time())}").start()
        try:
            spec = self._deploy_spec(endpoint, config_name)
            served = create_backend(self.backend, **self.backend_options).deploy(spec, ShipperReporter(shipper))
            with endpoint.lock:
                deleted = self.endpoints.get(endpoint.name) is not endpoint  # while it was starting
                if not deleted:
                    endpoint.served, endpoint.status = served, "InService"
            if deleted:
                served.delete()
        except EndpointFailed as exc:
            endpoint.status, endpoint.failure_reason = "Failed", str(exc)
        except SagetwinError as exc:
            endpoint.status, endpoint.failure_reason = "Failed", exc.problem
        except Exception as exc:  # the twin's own trouble still ends the creation, with the reason
            endpoint.status, endpoint.failure_reason = "Failed", f"{type(exc).__name__}: {exc}"
        finally:
            endpoint.updated = time.time()
            shipper.close()

    def _deploy_spec(self, endpoint: TwinEndpoint, config_name: str) -> DeploySpec:
        config = self.clients.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        variant = config["ProductionVariants"][0]
        model = self.clients.sagemaker.describe_model(ModelName=variant["ModelName"])
        container = model.get("PrimaryContainer") or model["Containers"][0]
        try:
            stack = stack_of(container.get("Image", ""), "inference")
        except UnsupportedImage as exc:
            raise EndpointFailed(str(exc)) from None
        folder = inside(self.work_dir, endpoint.name)
        archive = self._fetch_model(container.get("ModelDataUrl", ""), folder / "model.tar.gz")
        return DeploySpec(
            endpoint_name=endpoint.name, model_data=str(archive), instance_type=variant.get("InstanceType"),
            initial_instance_count=variant.get("InitialInstanceCount", 1),
            environment=dict(container.get("Environment") or {}), transformers_version=stack.transformers,
            pytorch_version=stack.pytorch, py_version=stack.py, role=model.get("ExecutionRoleArn"))

    def _fetch_model(self, uri: str, target: Path) -> Path:
        if not uri:
            raise EndpointFailed("the model has no ModelDataUrl: the twin serves models from a model.tar.gz in its "
                                 "S3 (a Hub model named by HF_MODEL_ID needs the Hugging Face Hub).")
        try:
            archive = download_object(self.clients.s3, uri, target)
        except MissingData:
            raise EndpointFailed(f"Could not find model data at {uri}.") from None
        try:  # refused here, at CreateEndpoint, before any backend unpacks it
            check_archive(archive, name="the archive")
        except NotAnArchive:
            raise EndpointFailed(f"Failed to extract model data archive from URL \"{uri}\". Please ensure that the "
                                 "object located at the URL is a valid tar.gz archive.") from None
        except ArchiveError as exc:
            raise EndpointFailed(f"Failed to extract model data archive from URL \"{uri}\": {exc}") from None
        return archive

    def _release(self, name: str) -> None:
        """Forget the endpoint and stop what serves it; an endpoint still starting is stopped by
        its starter, which sees it gone. An invocation in flight finishes first."""
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return
        with endpoint.lock:
            self.endpoints.pop(name, None)
            served, endpoint.served, endpoint.status = endpoint.served, None, "Deleting"
        if served is not None:
            served.delete()
