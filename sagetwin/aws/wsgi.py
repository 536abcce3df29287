"""The twin's front door: moto's WSGI app, with the SageMaker calls that must really run
handed to sagetwin's own handlers first.

Requests are routed as AWS routes them: the SageMaker control plane by ``X-Amz-Target``
(JSON 1.1 protocol), the runtime's invocations by their REST paths. Each SageMaker action is
carried out by a handler, answered by moto's record where AWS only records, or refused
(``actions``); the other services (S3, CloudWatch, IAM, STS) get moto's own answer.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from sagetwin.aws.actions import RECORDED
from sagetwin.aws.actions import refusal as refused_action
from sagetwin.aws.constraints import constraint_message
from sagetwin.aws.describe_shapes import ALWAYS, as_aws_returns, shaped_reply
from sagetwin.aws.guard import Guard, headers_of_environ
from sagetwin.aws.iam_simulation import form_of
from sagetwin.aws.replies import Reply, json_reply, service_error
from sagetwin.aws.server import vouch_for_connection
from sagetwin.core.errors import ConfigurationError
from sagetwin.core.limits import check_resource_name

DEFAULT_REGION = "us-east-1"  # the scope of an S3 Version 2 signature, which names none
RUNTIME_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/(?P<kind>invocations|async-invocations|"
                          r"invocations-response-stream)$")
RUNTIME_ACTIONS = {"invocations": "InvokeEndpoint", "async-invocations": "InvokeEndpointAsync",
                   "invocations-response-stream": "InvokeEndpointWithResponseStream"}


@dataclass
class Call:
    """A request the twin handles: the operation, its JSON body, and how to ask moto about it."""

    operation: str
    body: bytes
    environ: dict[str, Any]
    moto: Callable[[dict[str, Any], bytes], Reply]

    def params(self) -> dict[str, Any]:
        return json.loads(self.body or b"{}")

    def pass_to_moto(self) -> Reply:
        return self.moto(self.environ, self.body)

    def header(self, name: str, default: str = "") -> str:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):  # WSGI keeps these two without the HTTP_ prefix
            return self.environ.get(key) or default
        return self.environ.get("HTTP_" + key, default)


Handler = Callable[[Call], Reply]


def create_once(call: Call, name: str, field: str, registry: dict[str, Any], lock: Any,
                taken: Callable[[str], Reply], make: Callable[[str], Any],
                precheck: Callable[[], Reply | None] = lambda: None) -> tuple[Reply, Any]:
    """A Create* as the service takes it: the name's pattern, ``precheck`` (e.g. the role), a name
    already in use refused (under ``lock``: two requests at once count), moto's record, then the
    twin's own object ``make(name)``; returns the reply and that object (None when refused)."""
    try:
        check_resource_name(name, field)
    except ConfigurationError as exc:
        return service_error("ValidationException", exc.problem), None
    refused = precheck()
    if refused is not None:
        return refused, None
    with lock:
        if name in registry:
            return taken(name), None
        reply = call.pass_to_moto()
        if not reply.ok:
            return reply, None
        made = registry[name] = make(name)
    return reply, made


def describe_live(call: Call, job: Any) -> Reply:
    """A Describe* of a job the twin runs: moto's record (asked for once: it never changes) with
    the job's live state (``job.overlay()``; a None there removes the field) over it; the SDK
    describes a running job several times a second. ``job`` None: moto's answer as it is."""
    if job is None:
        return call.pass_to_moto()
    if job.recorded is None:
        reply = call.pass_to_moto()
        if not reply.ok:
            return reply
        job.recorded = reply.json()
    # the request's own fields first (AWS echoes them; moto drops some, e.g. Environment, RetryStrategy)
    shown = {**job.request, **job.recorded, **job.overlay()}
    return json_reply(as_aws_returns(call.operation, {k: v for k, v in shown.items() if v is not None}))


def listing_with_status(call: Call, items: str, name_key: str, overlay: Callable[[str], dict[str, Any] | None]
                        ) -> Reply:
    """A List* answer with the statuses the twin knows (moto's are static), its ``StatusEquals``
    filter applied to those rather than to moto's."""
    params = call.params()
    wanted = params.pop("StatusEquals", None)
    reply = Call(call.operation, json.dumps(params).encode(), call.environ, call.moto).pass_to_moto()
    if not reply.ok:
        return reply
    payload = reply.json()
    status_key = {"TrainingJobSummaries": "TrainingJobStatus", "Endpoints": "EndpointStatus",
                  "TransformJobSummaries": "TransformJobStatus"}[items]
    for summary in payload.get(items, []):
        summary.update(overlay(summary.get(name_key, "")) or {})
    if wanted:
        payload[items] = [summary for summary in payload.get(items, []) if summary.get(status_key) == wanted]
    return json_reply(payload)


class TwinApp:
    """WSGI middleware: the ``guard`` first (see ``guard``), then ``operations`` (SageMaker
    action → handler) and ``runtime`` (SageMaker Runtime action → handler); actions without a
    handler get moto's record where AWS only records, else the refusal (``actions``)."""

    def __init__(self, moto_app: Callable[..., Iterable[bytes]], operations: dict[str, Handler],
                 runtime: dict[str, Callable[[str, Call], Reply]], guard: Guard) -> None:
        self.moto_app = moto_app
        self.operations = operations  # SageMaker action → handler
        self.runtime = runtime  # SageMaker Runtime action → handler(endpoint name, call)
        self.iam: dict[str, Callable[[bytes], Reply]] = {}  # IAM (query protocol) action → handler(form body)
        self.guard = guard

    def refusal(self, environ: dict[str, Any]) -> Reply | None:
        """The guard's verdict on the whole request (its headers were checked as they arrived;
        here the signature is checked over the body too). A verified request vouches for its
        connection, and its signature's scope is what routes it (``sagetwin.scope``): a request
        signed for one service never reaches another."""
        raw_uri = environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        refused, found = self.guard.on_request(environ.get("REQUEST_METHOD", "GET"), raw_uri,
                                               headers_of_environ(environ), environ["wsgi.input"])
        if refused is not None or found is None:
            refused = refused or self.guard.unsigned(raw_uri, headers_of_environ(environ))
            environ.get("sagetwin.close_after", lambda: None)()  # a refused caller keeps no connection
            return Reply(refused.status, refused.body, refused.headers)
        environ["sagetwin.scope"] = (found.region or DEFAULT_REGION, found.service)
        environ["sagetwin.claim"] = found
        vouch_for_connection(environ)
        return None

    @staticmethod
    def signed_sagemaker_call(environ: dict[str, Any]) -> bool:
        """Only a POST signed (in its Authorization header) for SageMaker, with its X-Amz-Target
        among what was signed, reaches sagetwin's handlers, as only such a call reaches the service."""
        found = environ.get("sagetwin.claim")
        return (found is not None and found.form == "v4-header" and found.service == "sagemaker"
                and environ.get("REQUEST_METHOD") == "POST")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        service, _, operation = target.partition(".")
        runtime = RUNTIME_PATH.match(environ.get("PATH_INFO", ""))
        refusal = self.refusal(environ)
        try:
            if refusal is not None:
                reply = refusal
            elif service == "SageMaker" and environ["sagetwin.scope"][1] == "sagemaker":
                reply = self._sagemaker(operation, environ)
            elif runtime and environ["sagetwin.scope"][1] == "sagemaker":
                reply = self._runtime(RUNTIME_ACTIONS[runtime.group("kind")], runtime.group("name"), environ)
            elif environ["sagetwin.scope"][1] == "iam" and self.iam:
                call = self._call("", environ)
                handler = self.iam.get((form_of(call.body).get("Action") or [""])[0])
                reply = handler(call.body) if handler else call.pass_to_moto()
            else:
                return self.moto_app(environ, start_response)
            if reply is None:
                return self.moto_app(environ, start_response)
        except ValueError as exc:  # a body that is not the JSON the protocol requires
            reply = service_error("SerializationException", f"the request body could not be read: {exc}")
        except Exception as exc:  # a handler's bug answers as the service's own failures do, not as HTML
            reply = service_error("InternalFailure", f"{type(exc).__name__}: {exc}", 500)
        if reply.stream is not None:  # no Content-Length: the server sends it chunked, each piece as it comes
            start_response(f"{reply.status} {HTTPStatus(reply.status).phrase}", list(reply.headers.items()))
            return reply.stream
        headers = {**reply.headers, "Content-Length": str(len(reply.body))}
        start_response(f"{reply.status} {HTTPStatus(reply.status).phrase}", list(headers.items()))
        return [reply.body]

    def _sagemaker(self, operation: str, environ: dict[str, Any]) -> Reply | None:
        """A control-plane action: its handler, moto's record (None: pass it on), or the refusal.
        Only a header-signed POST with its X-Amz-Target signed reaches either, as on AWS."""
        if not (self.signed_sagemaker_call(environ) and "x-amz-target" in environ["sagetwin.claim"].signed_headers):
            return service_error("AccessDeniedException", "SageMaker actions must be POSTed with a SigV4 "
                                 "Authorization header that signs X-Amz-Target.", 403)
        if operation not in self.operations and operation not in RECORDED:
            return refused_action(operation)
        call = self._call(operation, environ)
        try:
            problem = constraint_message("sagemaker", operation, call.params())
        except ValueError:  # not JSON: moto (or the handler) answers it in the service's words
            problem = None
        if problem:
            return service_error("ValidationException", problem)
        if operation in self.operations:
            return self.operations[operation](call)
        if operation in ALWAYS:  # a describe AWS only records: moto's record in the service's shape
            return shaped_reply(operation, call.pass_to_moto())
        return call.pass_to_moto()

    def _runtime(self, action: str, endpoint: str, environ: dict[str, Any]) -> Reply:
        if not self.signed_sagemaker_call(environ):
            return service_error("AccessDeniedException", "SageMaker Runtime calls must be POSTed with a SigV4 "
                                 "Authorization header.", 403)
        if action in self.runtime:
            return self.runtime[action](endpoint, self._call(action, environ))
        return refused_action(action, runtime=True)

    def _call(self, operation: str, environ: dict[str, Any]) -> Call:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        return Call(operation, body, environ, self.ask_moto)

    def ask_moto(self, environ: dict[str, Any], body: bytes) -> Reply:
        """Run the request through moto and keep its answer, so a handler can add to it."""
        environ = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"], captured["headers"] = int(status.split()[0]), dict(headers)

        chunks = self.moto_app(environ, start_response)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        headers = {k: v for k, v in captured["headers"].items() if k.lower() != "content-length"}
        return Reply(captured["status"], data, headers)
