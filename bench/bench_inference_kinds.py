"""Batch transform and asynchronous inference through the AWS twin, each against its baseline in
the same run, with `sagetwin aws` in its own process (as a person runs it), on the same model
(the tiny classifier) and backend (`process`):

1. transform: N records (default 1000) of JSON Lines, ``SingleRecord``, ``SplitType=Line``, from
   CreateTransformJob to ``Completed`` (the job's own model server start included), against the
   same records sent one by one with ``invoke_endpoint`` to an endpoint serving the same model;
   ratio = transform / one-by-one (target ≤ 1.2).
2. async: ``invoke_endpoint_async`` with the body in S3 → the answer's object in S3 (polled every
   2 ms, then read), against a synchronous ``invoke_endpoint`` of the same body on a real-time
   endpoint of the same model; the added p50 (target ≤ 100 ms) over M calls (default 50).

Usage: python bench/bench_inference_kinds.py [--records 1000] [--calls 50] [--json PATH]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

from bench_twin_guard import TwinProcess  # noqa: E402 - `sagetwin aws` in its own process, as a person runs it

from sagetwin.guide.data import resolve_model  # noqa: E402

IMAGE = ("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.3.0-transformers4.48.0-"
         "cpu-py311-ubuntu22.04")
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"  # the role `sagetwin aws` hands out
BODY = json.dumps({"inputs": "a wonderful, moving film"}).encode()


def model_archive(folder: Path) -> Path:
    target = folder / "model.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        for path in sorted(resolve_model("tiny").local_path.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                tar.add(path, arcname=path.name)
    return target


def wait_for(check, timeout: float = 300.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError("gave up waiting")


def endpoint(sm, model: str, name: str, **config) -> str:
    variant = {"VariantName": "AllTraffic", "ModelName": model, "InstanceType": "ml.m5.xlarge",
               "InitialInstanceCount": 1}
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant], **config)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_for(lambda: sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService", every=0.1)
    return name


def bench_transform(sm, runtime, s3, bucket: str, model: str, records: int) -> dict:
    lines = [json.dumps({"inputs": f"review {n}: a wonderful, moving film"}).encode() for n in range(records)]
    s3.put_object(Bucket=bucket, Key="bench/records.jsonl", Body=b"\n".join(lines) + b"\n")
    name = endpoint(sm, model, "bench-one-by-one")
    started = time.perf_counter()
    for line in lines:
        runtime.invoke_endpoint(EndpointName=name, Body=line, ContentType="application/json")
    one_by_one = time.perf_counter() - started
    sm.delete_endpoint(EndpointName=name)
    started = time.perf_counter()
    sm.create_transform_job(
        TransformJobName="bench-transform", ModelName=model, BatchStrategy="SingleRecord",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                        "S3Uri": f"s3://{bucket}/bench/records.jsonl"}},
                        "ContentType": "application/json", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"s3://{bucket}/bench/out", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1})
    status = wait_for(lambda: (s := sm.describe_transform_job(TransformJobName="bench-transform")[
        "TransformJobStatus"]) in ("Completed", "Failed", "Stopped") and s, timeout=3600, every=0.05)
    transform = time.perf_counter() - started
    written = s3.get_object(Bucket=bucket, Key="bench/out/records.jsonl.out")["Body"].read().splitlines()
    assert status == "Completed" and len(written) == records, (status, len(written))
    return {"records": records, "one_by_one_s": round(one_by_one, 2), "transform_s": round(transform, 2),
            "ratio": round(transform / one_by_one, 3)}


def bench_async(sm, runtime, s3, bucket: str, model: str, calls: int) -> dict:
    sync_name = endpoint(sm, model, "bench-sync")
    async_name = endpoint(sm, model, "bench-async", AsyncInferenceConfig={
        "OutputConfig": {"S3OutputPath": f"s3://{bucket}/bench/async"},
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 1}})
    sync_times, async_times = [], []
    for _ in range(calls):  # alternating, so both see the same machine
        started = time.perf_counter()
        runtime.invoke_endpoint(EndpointName=sync_name, Body=BODY, ContentType="application/json")["Body"].read()
        sync_times.append(time.perf_counter() - started)
        key = f"bench/async-in/{uuid.uuid4()}.json"
        s3.put_object(Bucket=bucket, Key=key, Body=BODY)
        started = time.perf_counter()
        answer = runtime.invoke_endpoint_async(EndpointName=async_name, InputLocation=f"s3://{bucket}/{key}",
                                               ContentType="application/json")
        out_key = answer["OutputLocation"].split(f"{bucket}/", 1)[1]

        def written(out_key: str = out_key) -> bool:
            try:
                s3.head_object(Bucket=bucket, Key=out_key)
                return True
            except s3.exceptions.ClientError:
                return False

        wait_for(written, timeout=120, every=0.002)
        s3.get_object(Bucket=bucket, Key=out_key)["Body"].read()
        async_times.append(time.perf_counter() - started)
    for name in (sync_name, async_name):
        sm.delete_endpoint(EndpointName=name)
    sync_p50, async_p50 = statistics.median(sync_times), statistics.median(async_times)
    return {"calls": calls, "sync_p50_ms": round(sync_p50 * 1000, 1), "async_p50_ms": round(async_p50 * 1000, 1),
            "added_p50_ms": round((async_p50 - sync_p50) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, TwinProcess() as twin:  # clients in this process, the twin in its own
        sm, s3, runtime = (twin.client(s) for s in ("sagemaker", "s3", "sagemaker-runtime"))
        bucket = "bench-kinds"
        s3.create_bucket(Bucket=bucket)
        s3.upload_fileobj(io.BytesIO(model_archive(Path(tmp)).read_bytes()), bucket, "bench/model.tar.gz")
        sm.create_model(ModelName="bench-tiny", ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": IMAGE, "ModelDataUrl": f"s3://{bucket}/bench/model.tar.gz",
            "Environment": {"HF_TASK": "text-classification"}})
        result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                  "transform": bench_transform(sm, runtime, s3, bucket, "bench-tiny", args.records),
                  "async": bench_async(sm, runtime, s3, bucket, "bench-tiny", args.calls)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
