"""Benchmarks for the AWS twin, each against a baseline measured in the same run.

1. fit: the SageMaker SDK's ``estimator.fit()`` through the twin / the same job on the same
   backend called directly (``HuggingFaceJob.fit`` with the same script, hyperparameters and
   data), rounds alternating after one uncounted warm-up round of each, medians compared
   (target <= 1.15);
2. InvokeEndpoint: p50 of boto3's ``invoke_endpoint`` through the twin minus p50 of the same
   body sent to the backend's endpoint directly, calls alternating (target <= 5 ms).

Usage: python bench/bench_twin.py [--rounds 3] [--requests 300] [--backend process]
       [--json bench/results/twin.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import sagetwin  # noqa: E402
import sagetwin.aws  # noqa: E402
from sagetwin.core.progress import SilentReporter  # noqa: E402
from sagetwin.emulation.artifacts import local_path  # noqa: E402
from sagetwin.guide.data import prepare_datasets, resolve_model  # noqa: E402

TRAIN_SCRIPTS = REPO / "train_scripts"
VERSIONS = {"transformers_version": "4.48.0", "pytorch_version": "2.3.0", "py_version": "py311"}
HYPERPARAMETERS = {"epochs": 1, "max_steps": 20, "train_batch_size": 16, "warmup_steps": 0,
                   "model_name": "/opt/ml/input/data/model"}


def direct_fit(backend: str, channels: dict[str, str]) -> tuple[float, str]:
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, hyperparameters=HYPERPARAMETERS,
                                  backend=backend, reporter=SilentReporter(), **VERSIONS)
    started = time.perf_counter()
    result = job.fit(channels)
    return time.perf_counter() - started, result.model_data


def twin_fit(session, role: str, inputs: dict[str, str]) -> float:
    from sagemaker.huggingface import HuggingFace

    estimator = HuggingFace(entry_point="train.py", source_dir=str(TRAIN_SCRIPTS), instance_type="ml.p3.2xlarge",
                            instance_count=1, role=role, hyperparameters=HYPERPARAMETERS, sagemaker_session=session,
                            **VERSIONS)
    started = time.perf_counter()
    estimator.fit(inputs, logs="None")
    return time.perf_counter() - started


def bench_fit(twin, session, role: str, channels: dict[str, str], rounds: int) -> tuple[dict, str]:
    inputs = {name: session.upload_data(path, key_prefix=f"bench/{name}") for name, path in channels.items()}
    direct, through = [], []
    _, model_data = direct_fit(twin.backend, channels)  # warm-up of both paths (imports, page cache): not counted
    twin_fit(session, role, inputs)
    for _ in range(rounds):
        seconds, model_data = direct_fit(twin.backend, channels)
        direct.append(seconds)
        through.append(twin_fit(session, role, inputs))
    report = {"direct_s": [round(s, 2) for s in direct], "twin_s": [round(s, 2) for s in through],
              "ratio": round(statistics.median(through) / statistics.median(direct), 3), "target": "<= 1.15"}
    return report, model_data


def bench_invoke(twin, session, role: str, model_data: str, requests: int) -> dict:
    import boto3
    from sagemaker.huggingface import HuggingFaceModel

    uri = session.upload_data(str(local_path(model_data, "model")), key_prefix="bench/model")
    predictor = HuggingFaceModel(model_data=uri, role=role, sagemaker_session=session, **VERSIONS).deploy(
        1, "ml.g4dn.xlarge")
    try:
        served = twin.endpoints.endpoints[predictor.endpoint_name].served
        runtime = boto3.client("sagemaker-runtime")
        body = json.dumps({"inputs": "a wonderful, moving film"}).encode()
        direct, through = [], []
        for i in range(requests + 10):
            started = time.perf_counter()
            served.invoke(body, "application/json", "application/json")
            middle = time.perf_counter()
            runtime.invoke_endpoint(EndpointName=predictor.endpoint_name, Body=body, ContentType="application/json",
                                    Accept="application/json")["Body"].read()
            if i >= 10:  # warm-up calls are not counted
                direct.append((middle - started) * 1000)
                through.append((time.perf_counter() - middle) * 1000)
    finally:
        predictor.delete_endpoint()
    added = statistics.median(through) - statistics.median(direct)
    return {"direct_p50_ms": round(statistics.median(direct), 2), "twin_p50_ms": round(statistics.median(through), 2),
            "added_p50_ms": round(added, 2), "requests": requests, "target": "<= 5 ms added"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="process")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "twin.json"))
    args = parser.parse_args()
    model = resolve_model("tiny")
    channels = {**prepare_datasets("sample", model.tokenizer_source, train_size=320, test_size=64),
                **model.channels()}
    with sagetwin.aws.start(backend=args.backend, persist=False) as twin:
        import sagemaker

        session = sagemaker.Session()
        role = sagemaker.get_execution_role()
        fit, model_data = bench_fit(twin, session, role, channels, args.rounds)
        print("fit", json.dumps(fit))
        invoke = bench_invoke(twin, session, role, model_data, args.requests)
        print("invoke", json.dumps(invoke))
    report = {"backend": args.backend, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "fit": fit, "invoke": invoke}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
