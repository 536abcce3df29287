"""``InvokeEndpointAsync`` carried out: the request is queued on its endpoint, its input read from
the twin's S3 when its turn comes, the model's answer written to ``<S3OutputPath>/<id>.out``
(a failure to ``<S3FailurePath or S3OutputPath>/<id>-error.out``), as the service does; the
caller gets ``202`` with the locations at once. At most ``MaxConcurrentInvocationsPerInstance``
requests run at a time per endpoint; a deleted endpoint drops what it still had queued."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sagetwin.aws.replies import Reply, json_reply, service_error
from sagetwin.aws.s3 import split_uri
from sagetwin.core.errors import InvocationError, SagetwinError

DEFAULT_CONCURRENCY = 4  # the service picks one when the config gives none
DEFAULT_TTL_S = 6 * 3600
MAX_TTL_S = 21600
ASYNC_INVOCATION_TIMEOUT_S = 3600.0  # the most InvocationTimeoutSeconds allows: the endpoint's own limit
DEFAULT_INVOCATION_TIMEOUT_S = 900
MAX_INLINE_BODY = 128_000  # an InvokeEndpointAsync Body (AsyncBodyBlob); larger inputs go through S3
MAX_INPUT_BYTES = 1024**3  # an input in S3: asynchronous inference takes payloads up to 1 GB
# The twin's own bound (AWS's queue lives in the service): inline bodies of one endpoint's
# requests, queued or running, take at most this much memory; past it a request is throttled
# (429), never dropped silently.
MAX_QUEUED_INLINE_BYTES = 256 * 1024**2
_STOP = object()


def _number(call: Any, header: str) -> int | None:
    value = call.header(header)
    return int(value) if value.strip().isdigit() else None if not value else -1


def async_request_problem(call: Any) -> str | None:
    """What the runtime refuses in an InvokeEndpointAsync request (ValidationError)."""
    location = call.header("X-Amzn-SageMaker-InputLocation")
    if location and call.body:
        return "InputLocation and Body cannot both be given: pass the input in S3 or inline, not both."
    if not location and not call.body:
        return "InputLocation is required: the S3 URI of the request's input."
    if len(call.body) > MAX_INLINE_BODY:
        return (f"1 validation error detected: Value at 'body' failed to satisfy constraint: Member must have length "
                f"less than or equal to {MAX_INLINE_BODY}. Put a larger input in S3 and pass InputLocation.")
    for header, low, high in (("X-Amzn-SageMaker-RequestTTLSeconds", 60, MAX_TTL_S),
                              ("X-Amzn-SageMaker-InvocationTimeoutSeconds", 1, int(ASYNC_INVOCATION_TIMEOUT_S))):
        value = _number(call, header)
        if value is not None and not low <= value <= high:
            field = header.removeprefix("X-Amzn-SageMaker-")
            return (f"1 validation error detected: Value '{call.header(header)}' at '{field[0].lower() + field[1:]}' "
                    f"failed to satisfy constraint: Member must have value between {low} and {high}")
    return None


@dataclass
class AsyncRequest:
    inference_id: str
    input_location: str | None
    body: bytes | None
    content_type: str
    accept: str
    output: str
    failure: str
    queued: float = field(default_factory=time.monotonic)
    ttl_s: float = DEFAULT_TTL_S
    timeout_s: float = DEFAULT_INVOCATION_TIMEOUT_S


def output_locations(config: dict[str, Any], inference_id: str, extension: str = "", filename: str = ""
                     ) -> tuple[str, str, bool]:
    """(output URI, failure URI, whether the failure path was configured) for one request."""
    output_config = config.get("OutputConfig") or {}
    base = output_config["S3OutputPath"].rstrip("/")
    if extension:
        base = f"{base}/{extension.strip('/')}"
    failure_base = (output_config.get("S3FailurePath") or "").rstrip("/") or base
    name = filename or f"{inference_id}.out"
    return f"{base}/{name}", f"{failure_base}/{inference_id}-error.out", bool(output_config.get("S3FailurePath"))


class AsyncQueue:
    """One endpoint's queue and its workers; ``invoke(body, content_type, accept)`` runs a request."""

    def __init__(self, name: str, config: dict[str, Any], s3: Any, invoke: Any) -> None:
        self.name, self.config, self.s3, self._invoke = name, config, s3, invoke
        client_config = config.get("ClientConfig") or {}
        self.concurrency = int(client_config.get("MaxConcurrentInvocationsPerInstance") or DEFAULT_CONCURRENCY)
        self._queue: queue.Queue[Any] = queue.Queue()
        self._workers: list[threading.Thread] = []  # started as requests come, up to the concurrency
        self._lock = threading.Lock()
        self._idle = 0
        self._queued_bytes = 0
        self._closed = False

    def submit(self, call: Any) -> Reply:
        """Queue the call's request; the answer the runtime gives at once (202 and the locations)."""
        inference_id = call.header("X-Amzn-SageMaker-Inference-Id") or str(uuid.uuid4())
        output, failure, failure_configured = output_locations(
            self.config, inference_id, call.header("X-Amzn-SageMaker-S3OutputPathExtension"),
            call.header("X-Amzn-SageMaker-Filename"))
        request = AsyncRequest(
            inference_id, call.header("X-Amzn-SageMaker-InputLocation") or None, call.body or None,
            call.header("X-Amzn-SageMaker-Content-Type", "application/json"),
            call.header("X-Amzn-SageMaker-Accept", "application/json"), output, failure,
            ttl_s=_number(call, "X-Amzn-SageMaker-RequestTTLSeconds") or DEFAULT_TTL_S,
            timeout_s=_number(call, "X-Amzn-SageMaker-InvocationTimeoutSeconds") or DEFAULT_INVOCATION_TIMEOUT_S)
        with self._lock:
            if self._queued_bytes + len(call.body or b"") > MAX_QUEUED_INLINE_BYTES:
                return service_error("ThrottlingException", f"Endpoint {self.name} holds {self._queued_bytes} bytes of "
                                     "inline bodies in its requests (the twin holds at most "
                                     f"{MAX_QUEUED_INLINE_BYTES}); retry later, or pass large inputs as "
                                     "InputLocation.", 429)
            self._queued_bytes += len(call.body or b"")
        self._queue.put(request)
        self._add_worker_if_needed()
        headers = {"X-Amzn-SageMaker-OutputLocation": output}
        if failure_configured:
            headers["X-Amzn-SageMaker-FailureLocation"] = failure
        reply = json_reply({"InferenceId": inference_id}, status=202)
        reply.headers.update(headers)
        return reply

    def _add_worker_if_needed(self) -> None:
        """One more worker while more requests wait than workers wait for them, up to the
        endpoint's concurrency: a burst of N requests gets min(N, concurrency) workers."""
        with self._lock:
            if self._closed or self._queue.qsize() <= self._idle or len(self._workers) >= self.concurrency:
                return
            worker = threading.Thread(target=self._work, name=f"async {self.name} {len(self._workers)}", daemon=True)
            self._workers.append(worker)
            self._idle += 1  # counted idle until it takes its first request
        worker.start()

    def close(self) -> None:
        """Drop what is still queued and tell the workers to end; returns at once (DeleteEndpoint
        does not wait: a request still running ends when its model is stopped)."""
        self._closed = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with self._lock:
            workers = len(self._workers)
        for _ in range(workers):
            self._queue.put(_STOP)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for worker in list(self._workers):
            worker.join(timeout=max(0.0, deadline - time.monotonic()))

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _work(self) -> None:
        while True:
            request = self._queue.get()
            with self._lock:
                self._idle -= 1
            if request is _STOP or self._closed:
                return
            try:
                self._run(request)
            except Exception as exc:  # the twin's own trouble: the request still ends, in its failure file
                with contextlib.suppress(Exception):
                    self._put(request.failure, f"InternalFailure: {type(exc).__name__}: {exc}".encode(), "text/plain")
            with self._lock:  # the body is let go once its request has ended
                self._idle += 1
                self._queued_bytes -= len(request.body or b"")

    def _run(self, request: AsyncRequest) -> None:
        if time.monotonic() - request.queued > request.ttl_s:
            self._put(request.failure, b"Request expired: it waited in the queue longer than its RequestTTLSeconds.",
                      "text/plain")
            return
        try:
            body = request.body if request.input_location is None else self._read(request.input_location)
        except LookupError as exc:
            self._put(request.failure, str(exc).encode(), "text/plain")
            return
        try:
            answer, answer_type = self._invoke_within(request, body)
        except TimeoutError:
            self._put(request.failure, f"Inference timed out: the model did not answer within "
                      f"InvocationTimeoutSeconds={request.timeout_s:g}.".encode(), "text/plain")
            return
        except InvocationError as exc:
            self._put(request.failure, (exc.body or exc.problem).encode(), "application/json")
            return
        except SagetwinError as exc:
            self._put(request.failure, exc.problem.encode(), "text/plain")
            return
        self._put(request.output, answer, answer_type)

    def _invoke_within(self, request: AsyncRequest, body: bytes) -> tuple[bytes, str]:
        """The model's answer, or TimeoutError after the request's InvocationTimeoutSeconds (the
        model may go on; its late answer is not written)."""
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["answer"] = self._invoke(body, request.content_type, request.accept)
            except BaseException as exc:  # handed to the worker as it is
                box["error"] = exc

        runner = threading.Thread(target=call, name=f"async {self.name} {request.inference_id}", daemon=True)
        runner.start()
        runner.join(request.timeout_s)
        if runner.is_alive():
            raise TimeoutError
        if "error" in box:
            raise box["error"]
        return box["answer"]

    def _read(self, uri: str) -> bytes:
        try:
            bucket, key = split_uri(uri)
        except ValueError:
            raise LookupError(f"Failed to download the input from {uri}: the twin reads s3:// input locations "
                              "only.") from None
        try:
            found = self.s3.get_object(Bucket=bucket, Key=key)  # its size is known before its body is read
            if found["ContentLength"] > MAX_INPUT_BYTES:
                found["Body"].close()
                raise LookupError(f"The input at {uri} is {found['ContentLength']} bytes: asynchronous inference "
                                  f"takes payloads of up to 1 GB ({MAX_INPUT_BYTES} bytes).")
            return found["Body"].read()
        except self.s3.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise LookupError(f"Failed to download the input from {uri}: {code or exc}. Check that the object "
                              "exists and that the endpoint's role may read it.") from None

    def _put(self, uri: str, body: bytes, content_type: str) -> None:
        bucket, key = split_uri(uri)
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
