"""``InvokeEndpointAsync`` carried out: the request is queued on its endpoint, its input read from
the twin's S3 when its turn comes, the model's answer written to ``<S3OutputPath>/<id>.out``
(a failure to ``<S3FailurePath or S3OutputPath>/<id>-error.out``), as the service does; the
caller gets ``202`` with the locations at once. At most ``MaxConcurrentInvocationsPerInstance``
requests run at a time per endpoint; a deleted endpoint drops what it still had queued."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sagetwin.aws.replies import Reply, json_reply
from sagetwin.aws.s3 import split_uri
from sagetwin.core.errors import InvocationError, SagetwinError

DEFAULT_CONCURRENCY = 4  # the service picks one when the config gives none
DEFAULT_TTL_S = 6 * 3600
ASYNC_INVOCATION_TIMEOUT_S = 3600.0  # the most InvocationTimeoutSeconds allows; the default is 900
_STOP = object()


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
        self._workers = [threading.Thread(target=self._work, name=f"async {name} {i}", daemon=True)
                         for i in range(self.concurrency)]
        self._closed = False
        for worker in self._workers:
            worker.start()

    def submit(self, call: Any) -> Reply:
        """Queue the call's request; the answer the runtime gives at once (202 and the locations)."""
        inference_id = call.header("X-Amzn-SageMaker-Inference-Id") or str(uuid.uuid4())
        output, failure, failure_configured = output_locations(
            self.config, inference_id, call.header("X-Amzn-SageMaker-S3OutputPathExtension"),
            call.header("X-Amzn-SageMaker-Filename"))
        ttl = call.header("X-Amzn-SageMaker-RequestTTLSeconds")
        request = AsyncRequest(
            inference_id, call.header("X-Amzn-SageMaker-InputLocation") or None, call.body or None,
            call.header("X-Amzn-SageMaker-Content-Type", "application/json"),
            call.header("X-Amzn-SageMaker-Accept", "application/json"), output, failure,
            ttl_s=float(ttl) if ttl.isdigit() else DEFAULT_TTL_S)
        self._queue.put(request)
        headers = {"X-Amzn-SageMaker-OutputLocation": output}
        if failure_configured:
            headers["X-Amzn-SageMaker-FailureLocation"] = failure
        reply = json_reply({"InferenceId": inference_id}, status=202)
        reply.headers.update(headers)
        return reply

    def close(self) -> None:
        """Drop what is still queued and stop the workers (a request running finishes first)."""
        self._closed = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in self._workers:
            self._queue.put(_STOP)
        for worker in self._workers:
            worker.join(timeout=ASYNC_INVOCATION_TIMEOUT_S)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _work(self) -> None:
        while True:
            request = self._queue.get()
            if request is _STOP or self._closed:
                return
            try:
                self._run(request)
            except Exception:  # noqa: BLE001 - an S3 write that failed loses this answer, not the worker
                continue

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
            answer, answer_type = self._invoke(body, request.content_type, request.accept)
        except InvocationError as exc:
            self._put(request.failure, (exc.body or exc.problem).encode(), "application/json")
            return
        except SagetwinError as exc:
            self._put(request.failure, exc.problem.encode(), "text/plain")
            return
        self._put(request.output, answer, answer_type)

    def _read(self, uri: str) -> bytes:
        try:
            bucket, key = split_uri(uri)
        except ValueError:
            raise LookupError(f"Failed to download the input from {uri}: the twin reads s3:// input locations "
                              "only.") from None
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self.s3.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise LookupError(f"Failed to download the input from {uri}: {code or exc}. Check that the object "
                              "exists and that the endpoint's role may read it.") from None

    def _put(self, uri: str, body: bytes, content_type: str) -> None:
        bucket, key = split_uri(uri)
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
