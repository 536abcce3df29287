"""One transform job's pass over its input: input objects from the twin's S3, cut into requests
and sent to the job's model server (``transform_records`` for the cutting and joining), each
object's answers written to ``<S3OutputPath>/<key>.out``; server errors retried, a record the
model rejects logged as the service logs it."""

from __future__ import annotations

import json
import os
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sagetwin.aws.logs import LogShipper
from sagetwin.aws.s3 import split_uri
from sagetwin.aws.transform_records import (
    RecordError,
    apply_path,
    assemble,
    batches,
    join_input,
    split_records,
)
from sagetwin.core.errors import InvocationError

MODEL_REJECTED = "ClientError: See job logs for more information"
DEFAULT_RETRIES = 3  # ModelClientConfig.InvocationsMaxRetries when not set


def max_object_bytes() -> int:
    """The twin's bound on one input object, as read and as unpacked (``SAGETWIN_TRANSFORM_MAX_OBJECT_MB``)."""
    return int(float(os.environ.get("SAGETWIN_TRANSFORM_MAX_OBJECT_MB", "1024")) * 1024**2)


def too_large(uri: str, size: int | str, limit: int) -> str:
    return (f"ClientError: the input object {uri} is {size} bytes, over the {limit} bytes this twin holds in memory "
            "per object; split the input into smaller objects, or raise SAGETWIN_TRANSFORM_MAX_OBJECT_MB.")


def bounded_gunzip(data: bytes, limit: int, uri: str) -> bytes:
    """``gzip.decompress`` (every member) that stops past ``limit`` bytes: a small archive of zeros
    must not unpack into gigabytes of the twin's memory."""
    out, rest = bytearray(), data
    while rest:
        unpacker = zlib.decompressobj(wbits=31)
        try:
            out += unpacker.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise RecordError(f"ClientError: the input object {uri} is not valid gzip ({exc}).") from None
        if len(out) > limit:
            raise RecordError(too_large(uri, f"more than {limit}", limit))
        if not unpacker.eof:
            raise RecordError(f"ClientError: the input object {uri} is not valid gzip (it ends mid-stream).")
        rest = unpacker.unused_data.lstrip(b"\0")
    return bytes(out)


class Stopped(Exception):
    """StopTransformJob arrived while the job ran."""


class TransformRun:
    """One job's pass over its input."""

    def __init__(self, job: Any, served: Any, s3: Any, shipper: LogShipper) -> None:
        self.job, self.served, self.s3, self.shipper = job, served, s3, shipper
        request = job.request
        source = request["TransformInput"]
        self.content_type = source.get("ContentType", "")
        self.split_type = source.get("SplitType", "None")
        self.compression = source.get("CompressionType", "None")
        self.output = request["TransformOutput"]
        self.accept = self.output.get("Accept") or "application/json"
        self.strategy = request.get("BatchStrategy", "MultiRecord")
        self.max_payload = int(request.get("MaxPayloadInMB", 6))
        self.concurrency = max(1, int(request.get("MaxConcurrentTransforms") or 1))
        self.processing = request.get("DataProcessing") or {}

    def run(self) -> tuple[str, str | None]:
        """Every input object, on to the next when one fails (its record's error logged), as the
        service goes on; a stop removes what was written, as a stopped job stores no output."""
        self.shipper.write(f"[sagemaker logs]: MaxConcurrentTransforms={self.concurrency}, MaxPayloadInMB="
                           f"{self.max_payload}, BatchStrategy={self.strategy.upper()}")
        written: list[tuple[str, str]] = []
        failure: str | None = None
        try:
            for uri, relative in self._inputs():
                try:
                    written.append(self._transform_object(uri, relative))
                except RecordError as exc:
                    self.shipper.write(f"[sagemaker logs]: {uri}: {exc}")
                    failure = failure or (str(exc) if str(exc).startswith("ClientError") else MODEL_REJECTED)
                if self.job.stop_requested:
                    raise Stopped
        except Stopped:
            for bucket, key in written:
                self.s3.delete_object(Bucket=bucket, Key=key)
            raise
        return ("Failed", failure) if failure else ("Completed", None)

    def _inputs(self) -> list[tuple[str, str]]:
        """(object URI, output name) for each input object."""
        source = self.job.request["TransformInput"]["DataSource"]["S3DataSource"]
        uri = source["S3Uri"]
        bucket, prefix = split_uri(uri)
        if source.get("S3DataType", "S3Prefix") == "ManifestFile":
            manifest = json.loads(self._read(uri))
            base = manifest[0]["prefix"]
            return [(base.rstrip("/") + "/" + key, key) for key in manifest[1:]]
        keys = [o["Key"] for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        if not keys:
            raise RecordError(f"ClientError: No S3 objects found under S3 URL \"{uri}\" given in input data source. "
                              "Please ensure that the bucket exists in the selected region, that objects exist under "
                              "that S3 prefix.")
        base = prefix[:prefix.rfind("/") + 1]  # output names keep the keys' path below the prefix's folder
        return [(f"s3://{bucket}/{key}", key[len(base):]) for key in sorted(keys)]

    def _read(self, uri: str) -> bytes:
        """The object, within the twin's memory bound (the service streams what it reads)."""
        bucket, key = split_uri(uri)
        limit = max_object_bytes()
        found = self.s3.get_object(Bucket=bucket, Key=key)  # its size is known before its body is read
        if found["ContentLength"] > limit:
            found["Body"].close()
            raise RecordError(too_large(uri, found["ContentLength"], limit))
        data = found["Body"].read()
        return bounded_gunzip(data, limit, uri) if self.compression == "Gzip" else data

    def _transform_object(self, uri: str, relative: str) -> tuple[str, str]:
        data = self._read(uri)
        records = split_records(data, self.split_type)
        requests = list(batches(records, self.strategy, self.max_payload))
        failed = threading.Event()  # the first failed request ends the object's other requests at once

        def answer(batch: list[bytes]) -> bytes:
            if failed.is_set():
                raise RecordError(MODEL_REJECTED)
            try:
                return self._answer(uri, batch)
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"transform {self.job.name}") as pool:
            parts = list(pool.map(answer, requests))
        bucket, prefix = split_uri(self.output["S3OutputPath"])
        key = "/".join(filter(None, [prefix.rstrip("/"), relative + ".out"]))
        self.s3.put_object(Bucket=bucket, Key=key, Body=assemble(parts, self.output.get("AssembleWith", "None")),
                           ContentType=self.accept)
        return bucket, key

    def _invoke(self, uri: str, body: bytes) -> bytes:
        """One request, retried on a server error or timeout up to InvocationsMaxRetries, as the
        service retries; a client error (4xx) fails the record at once."""
        retries = int((self.job.request.get("ModelClientConfig") or {}).get("InvocationsMaxRetries", DEFAULT_RETRIES))
        for attempt in range(retries + 1):
            try:
                return self.served.invoke(body, self.content_type, self.accept)[0]
            except InvocationError as exc:
                if exc.status < 500 and exc.status != 0 or attempt == retries or self.job.stop_requested:
                    self.shipper.write(f"[sagemaker logs]: {uri}: ClientError: {exc.status}")
                    self.shipper.write(f"[sagemaker logs]: {uri}: Message:\n{exc.body}")
                    raise RecordError(MODEL_REJECTED) from None
                self.shipper.write(f"[sagemaker logs]: {uri}: retrying after {exc.status} "
                                   f"({attempt + 1} of {retries})")
        raise AssertionError("unreachable")

    def _answer(self, uri: str, batch: list[bytes]) -> bytes:
        """The answer to one request, joined and filtered as DataProcessing asks."""
        if self.job.stop_requested:
            raise Stopped
        sent = [apply_path(record, self.processing.get("InputFilter"), self.content_type) for record in batch]
        answer = self._invoke(uri, b"\n".join(sent))
        if self.processing.get("JoinSource", "None") == "Input":
            answers = answer.split(b"\n") if len(batch) > 1 else [answer]
            if len(answers) != len(batch):
                raise RecordError(f"ClientError: the model answered {len(answers)} records for {len(batch)} sent; "
                                  "JoinSource=Input needs one answer per record.")
            answer = b"\n".join(join_input(record, part, self.content_type)
                                for record, part in zip(batch, answers, strict=True))
        output_filter = self.processing.get("OutputFilter")
        if output_filter not in (None, "", "$"):
            answer = b"\n".join(apply_path(line, output_filter, self.accept if self.processing.get("JoinSource") !=
                                           "Input" else self.content_type) for line in answer.split(b"\n"))
        return answer
