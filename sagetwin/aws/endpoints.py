"""``CreateEndpoint`` carried out for real: the model (archive from the twin's S3, or its
``HF_MODEL_ID``) served by a backend; ``InvokeEndpoint`` forwarded to it, through the serverless
limits where the variant is serverless; ``InvokeEndpointAsync`` queued (``async_invocations``);
``DeleteEndpoint`` stops it and drops its queue."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagetwin.aws.async_invocations import ASYNC_INVOCATION_TIMEOUT_S, AsyncQueue, async_request_problem
from sagetwin.aws.describe_shapes import as_aws_returns
from sagetwin.aws.endpoint_configs import create_endpoint_config
from sagetwin.aws.hosted_models import HostingFailed, hosting_spec
from sagetwin.aws.logs import LogShipper
from sagetwin.aws.response_stream import streamed_reply
from sagetwin.aws.serverless import ServerlessGate
from sagetwin.aws.wsgi import Call, Reply, create_once, json_reply, listing_with_status, service_error
from sagetwin.core.backend import TakesCustomAttributes
from sagetwin.core.errors import EndpointError, InvocationError, SagetwinError
from sagetwin.core.paths import inside
from sagetwin.core.selection import create_backend
from sagetwin.core.spec import DeploySpec
from sagetwin.emulation.http_endpoint import CUSTOM_ATTRIBUTES_HEADER

PING_FAILED = ("The primary container for production variant AllTraffic did not pass the ping health check. "
               "Please check CloudWatch logs for this endpoint.")


@dataclass
class TwinEndpoint:
    name: str
    status: str = "Creating"
    failure_reason: str | None = None
    served: Any = None  # the backend's Endpoint once InService
    gate: ServerlessGate | None = None  # a serverless variant's limits
    async_config: dict[str, Any] | None = None  # the endpoint config's AsyncInferenceConfig
    queue: AsyncQueue | None = None  # its asynchronous requests, once InService
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
        self.changed: Callable[[], None] = lambda: None  # an endpoint's status changed (see aws.changes)
        self._creating = threading.Lock()
        self._starters: list[threading.Thread] = []

    def operations(self) -> dict[str, Any]:
        return {"CreateEndpointConfig": create_endpoint_config, "CreateEndpoint": self.create,
                "DescribeEndpoint": self.describe, "DeleteEndpoint": self.delete, "ListEndpoints": self.list}

    def runtime(self) -> dict[str, Any]:
        return {"InvokeEndpoint": self.invoke, "InvokeEndpointAsync": self.invoke_async,
                "InvokeEndpointWithResponseStream": self.invoke_stream}

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
        return json_reply(as_aws_returns("DescribeEndpoint", {**reply.json(), **overlay}))

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
        queues = [e.queue for e in self.endpoints.values() if e.queue is not None]
        for name in list(self.endpoints):
            self._release(name)
        deadline = time.monotonic() + wait_s
        for starter in self._starters:
            starter.join(timeout=max(0.0, deadline - time.monotonic()))
        for queue in queues:  # their models are stopped: a request still running ends at once
            queue.join(timeout=max(1.0, deadline - time.monotonic()))

    def _not_found(self, name: str) -> Reply:
        return service_error("ValidationError", f"Endpoint {name} of account {self.clients.account} not found.")

    def invoke(self, name: str, call: Call) -> Reply:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return self._not_found(name)
        if endpoint.async_config is not None:
            return service_error("ValidationError", f"Endpoint {name} of account {self.clients.account} is an "
                                 "asynchronous inference endpoint: call InvokeEndpointAsync (predict_async).")
        gate = endpoint.gate
        if gate is not None:
            refused = gate.too_large(call.body)
            if refused is not None:
                return refused
            if not gate.enter():
                return gate.throttled()
        try:
            return self._invoke_now(name, endpoint, call)
        finally:
            if gate is not None:
                gate.leave()

    def _invoke_now(self, name: str, endpoint: TwinEndpoint, call: Call) -> Reply:
        content_type = call.header("Content-Type", "application/json")
        accept = call.header("Accept", "application/json")
        attributes = call.header(CUSTOM_ATTRIBUTES_HEADER)
        with endpoint.lock:  # invocations run side by side (one connection per calling thread)
            served = endpoint.served if endpoint.status == "InService" else None
        if served is None:
            return self._not_found(name)
        try:
            if attributes and isinstance(served, TakesCustomAttributes):
                body, answer_type = served.invoke_with_attributes(call.body, content_type, accept, attributes)
            else:
                body, answer_type = served.invoke(call.body, content_type, accept)
        except InvocationError as exc:
            return self._model_error(name, exc)
        except SagetwinError as exc:
            return self._model_error(name, InvocationError(exc.problem, status=500, body=exc.problem))
        if endpoint.gate is not None and (refused := endpoint.gate.answer_too_large(body)) is not None:
            return self._model_error(name, refused)
        return Reply(200, body, {"Content-Type": answer_type, "x-Amzn-Invoked-Production-Variant": "AllTraffic"})

    def invoke_stream(self, name: str, call: Call) -> Reply:
        """InvokeEndpointWithResponseStream: the container's answer handed on as it comes."""
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return self._not_found(name)
        with endpoint.lock:
            served = endpoint.served if endpoint.status == "InService" else None
        if served is None:
            return self._not_found(name)
        if endpoint.async_config is not None or endpoint.gate is not None:
            return service_error("ValidationError", f"Endpoint {name} of account {self.clients.account} is "
                                 f"{'an asynchronous' if endpoint.async_config else 'a serverless'} endpoint, which "
                                 "does not stream its answers: call InvokeEndpoint"
                                 f"{'Async' if endpoint.async_config else ''}.")
        if not hasattr(served, "stream"):
            return service_error("ValidationError", f"sagetwin does not stream the answers of endpoint {name}'s "
                                 "backend; call InvokeEndpoint, or deploy it on --backend process.")
        try:
            pieces, answer_type = served.stream(call.body, call.header("Content-Type", "application/json"),
                                                call.header("X-Amzn-SageMaker-Accept", "application/json"),
                                                call.header(CUSTOM_ATTRIBUTES_HEADER) or None)
        except InvocationError as exc:
            return self._model_error(name, exc)
        except SagetwinError as exc:
            return self._model_error(name, InvocationError(exc.problem, status=500, body=exc.problem))
        return streamed_reply(pieces, answer_type)

    def invoke_async(self, name: str, call: Call) -> Reply:
        endpoint = self.endpoints.get(name)
        if endpoint is None or endpoint.status != "InService" or endpoint.queue is None:
            if endpoint is not None and endpoint.status == "InService":
                return service_error("ValidationError", f"Endpoint {name} of account {self.clients.account} has no "
                                     "AsyncInferenceConfig: call InvokeEndpoint, or create the endpoint config with "
                                     "AsyncInferenceConfig (deploy(async_inference_config=...)).")
            return self._not_found(name)
        problem = async_request_problem(call)
        if problem:
            return service_error("ValidationError", problem)
        return endpoint.queue.submit(call)

    def _invoke_served(self, endpoint: TwinEndpoint, body: bytes, content_type: str, accept: str
                       ) -> tuple[bytes, str]:
        """One asynchronous request run on the endpoint's model (errors raised, for its failure file)."""
        with endpoint.lock:
            served = endpoint.served
        if served is None:
            raise SagetwinError(f"endpoint {endpoint.name} was deleted before the request ran.")
        return served.invoke(body, content_type, accept)

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
                    if endpoint.async_config is not None:
                        endpoint.queue = AsyncQueue(endpoint.name, endpoint.async_config, self.clients.s3,
                                                    lambda *args: self._invoke_served(endpoint, *args))
            if deleted:
                served.delete()
        except HostingFailed as exc:
            endpoint.status, endpoint.failure_reason = "Failed", str(exc)
        except EndpointError as exc:  # the server never answered /ping in time, or exited: the service's words
            endpoint.status, endpoint.failure_reason = "Failed", f"{PING_FAILED} ({exc.render()})"
        except SagetwinError as exc:
            endpoint.status, endpoint.failure_reason = "Failed", exc.render()
        except Exception as exc:  # the twin's own trouble still ends the creation, with the reason
            endpoint.status, endpoint.failure_reason = "Failed", f"{type(exc).__name__}: {exc}"
        finally:
            endpoint.updated = time.time()
            shipper.close()
            self.changed()

    def _deploy_spec(self, endpoint: TwinEndpoint, config_name: str) -> DeploySpec:
        config = self.clients.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        variant = config["ProductionVariants"][0]
        endpoint.gate = ServerlessGate.of(variant)
        endpoint.async_config = config.get("AsyncInferenceConfig")
        environment = {"CUDA_VISIBLE_DEVICES": "-1"} if endpoint.gate is not None else {}  # serverless: no GPU
        timeout = ASYNC_INVOCATION_TIMEOUT_S if endpoint.async_config is not None else 60.0
        return hosting_spec(self.clients, variant["ModelName"], endpoint.name, inside(self.work_dir, endpoint.name),
                            instance_type=variant.get("InstanceType") or "ml.m5.large",
                            instance_count=variant.get("InitialInstanceCount", 1), environment=environment,
                            invocation_timeout=timeout,  # deploy(container_startup_health_check_timeout=...):
                            startup_timeout=variant.get("ContainerStartupHealthCheckTimeoutInSeconds"))

    def _release(self, name: str) -> None:
        """Forget the endpoint and stop what serves it; an endpoint still starting is stopped by
        its starter, which sees it gone. An invocation in flight finishes first; queued
        asynchronous requests are dropped."""
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return
        with endpoint.lock:
            self.endpoints.pop(name, None)
            served, endpoint.served, endpoint.status = endpoint.served, None, "Deleting"
        if endpoint.queue is not None:
            endpoint.queue.close()  # queued requests dropped; the workers end on their own
        if served is not None:
            served.delete()
