"""Benchmarks for the AWS twin, each against a baseline measured in the same run.

The twin runs in its own process, as ``sagetwin exec`` runs it: this script starts itself
again under ``sagetwin exec --backend B --no-persist`` and measures from there (``--in-process``
measures a twin started in the measuring process instead, as ``sagetwin.aws.start()`` in a
notebook runs it).

1. fit: the SageMaker SDK's ``estimator.fit()`` through the twin / the same job on the same
   backend called directly (``HuggingFaceJob.fit`` with the same script, hyperparameters and
   data), rounds alternating after one uncounted warm-up round of each, medians compared
   (target <= 1.15);
2. InvokeEndpoint: p50 of boto3's ``invoke_endpoint`` through the twin minus p50 of the same
   body sent directly to an endpoint of the same backend serving the same ``model.tar.gz``
   (deployed by this process), calls alternating (target <= 5 ms).

Usage: python bench/bench_twin.py [--rounds 5] [--requests 300] [--backend process]
       [--in-process] [--json bench/results/twin.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import sagetwin  # noqa: E402
import sagetwin.aws  # noqa: E402
from sagetwin.core.progress import SilentReporter  # noqa: E402
from sagetwin.core.selection import create_backend  # noqa: E402
from sagetwin.core.spec import DeploySpec  # noqa: E402
from sagetwin.emulation.artifacts import local_path  # noqa: E402
from sagetwin.guide.data import prepare_datasets, resolve_model  # noqa: E402

TRAIN_SCRIPTS = REPO / "train_scripts"
VERSIONS = {"transformers_version": "4.48.0", "pytorch_version": "2.3.0", "py_version": "py311"}
HYPERPARAMETERS = {"epochs": 1, "max_steps": 20, "train_batch_size": 16, "warmup_steps": 0,
                   "model_name": "/opt/ml/input/data/model"}


def direct_fit(backend: str, channels: dict[str, str], trained: list[float] | None = None) -> tuple[float, str]:
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, hyperparameters=HYPERPARAMETERS,
                                  backend=backend, reporter=SilentReporter(), **VERSIONS)
    started = time.perf_counter()
    result = job.fit(channels)
    if trained is not None:
        trained.append(round(result.duration_s, 2))  # the backend's own time for the job
    return time.perf_counter() - started, result.model_data


def twin_fit(session, role: str, inputs: dict[str, str], phases: list[dict] | None = None) -> float:
    from sagemaker.huggingface import HuggingFace

    estimator = HuggingFace(entry_point="train.py", source_dir=str(TRAIN_SCRIPTS), instance_type="ml.p3.2xlarge",
                            instance_count=1, role=role, hyperparameters=HYPERPARAMETERS, sagemaker_session=session,
                            **VERSIONS)
    called = time.time()
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the SDK tails the job's log, as fit() does by default
        estimator.fit(inputs)
    seconds = time.perf_counter() - started
    if phases is not None:
        phases.append(fit_phases(session, estimator.latest_training_job.name, called, called + seconds))
    return seconds


def fit_phases(session, job_name: str, called: float, returned: float) -> dict:
    """Where one fit() through the twin spent its time, from the job's own status transitions:
    before the job was created (the SDK packing and uploading its code), each secondary status,
    and from the job's end to fit() returning (the SDK noticing, its last log reads)."""
    described = session.sagemaker_client.describe_training_job(TrainingJobName=job_name)
    created = described["CreationTime"].timestamp()
    ended = described["TrainingEndTime"].timestamp()
    phases = {"before_create_s": created - called}
    for transition in described["SecondaryStatusTransitions"]:
        if "EndTime" in transition:
            key = f"{transition['Status'].lower()}_s"
            phases[key] = phases.get(key, 0.0) + transition["EndTime"].timestamp() - transition["StartTime"].timestamp()
    phases["after_end_s"] = returned - ended
    return {k: round(v, 3) for k, v in phases.items()}


def bench_fit(backend: str, session, role: str, channels: dict[str, str], rounds: int) -> tuple[dict, str]:
    inputs = {name: session.upload_data(path, key_prefix=f"bench/{name}") for name, path in channels.items()}
    direct, through, phases, trained = [], [], [], []
    _, model_data = direct_fit(backend, channels)  # warm-up of both paths (imports, page cache): not counted
    twin_fit(session, role, inputs)
    for _ in range(rounds):
        seconds, model_data = direct_fit(backend, channels, trained)
        direct.append(seconds)
        through.append(twin_fit(session, role, inputs, phases))
    report = {"direct_s": [round(s, 2) for s in direct], "twin_s": [round(s, 2) for s in through],
              "ratio": round(statistics.median(through) / statistics.median(direct), 3), "target": "<= 1.15",
              "added_s": round(statistics.median(through) - statistics.median(direct), 2),
              # each round's pair (a direct fit, then the twin's, back to back): less of the machine's drift
              "added_paired_s": round(statistics.median(t - d for t, d in zip(through, direct, strict=True)), 2),
              "added_target": "<= 0.5 s",
              "twin_phases_median_s": {key: round(statistics.median(p.get(key, 0.0) for p in phases), 3)
                                       for key in phases[0]},
              # the job itself, round by round: the backend's time directly, the Training phase through the twin
              "direct_job_s": trained, "twin_training_s": [p.get("training_s") for p in phases],
              # what each fit() spends outside its job (the job's own time varies by seconds on 2 cores)
              "outside_the_job_added_s": round(
                  statistics.median(t - p["training_s"] for t, p in zip(through, phases, strict=True)
                                    if "training_s" in p)
                  - statistics.median(d - j for d, j in zip(direct, trained, strict=True)), 2)}
    return report, model_data


def bench_invoke(backend: str, session, role: str, model_data: str, requests: int) -> dict:
    import boto3
    from sagemaker.huggingface import HuggingFaceModel

    archive = local_path(model_data, "model")
    uri = session.upload_data(str(archive), key_prefix="bench/model")
    direct_endpoint = create_backend(backend).deploy(
        DeploySpec(endpoint_name="bench-direct", model_data=str(archive), transformers_version=VERSIONS[
            "transformers_version"], pytorch_version=VERSIONS["pytorch_version"], py_version=VERSIONS["py_version"]),
        SilentReporter())
    predictor = None
    try:
        predictor = HuggingFaceModel(model_data=uri, role=role, sagemaker_session=session, **VERSIONS).deploy(
            1, "ml.g4dn.xlarge")
        runtime = boto3.client("sagemaker-runtime")
        body = json.dumps({"inputs": "a wonderful, moving film"}).encode()
        direct, through = [], []
        for i in range(requests + 10):
            started = time.perf_counter()
            direct_endpoint.invoke(body, "application/json", "application/json")
            middle = time.perf_counter()
            runtime.invoke_endpoint(EndpointName=predictor.endpoint_name, Body=body, ContentType="application/json",
                                    Accept="application/json")["Body"].read()
            if i >= 10:  # warm-up calls are not counted
                direct.append((middle - started) * 1000)
                through.append((time.perf_counter() - middle) * 1000)
    finally:
        direct_endpoint.delete()
        if predictor is not None:
            predictor.delete_endpoint()
    added = statistics.median(through) - statistics.median(direct)
    return {"direct_p50_ms": round(statistics.median(direct), 2), "twin_p50_ms": round(statistics.median(through), 2),
            "added_p50_ms": round(added, 2), "requests": requests, "target": "<= 5 ms added"}


def measure(args: argparse.Namespace, backend: str) -> tuple[dict, dict]:
    """Both measures, against the twin this process's AWS clients reach."""
    import sagemaker

    model = resolve_model("tiny")
    channels = {**prepare_datasets("sample", model.tokenizer_source, train_size=320, test_size=64),
                **model.channels()}
    session = sagemaker.Session()
    role = sagemaker.get_execution_role()
    fit, model_data = bench_fit(backend, session, role, channels, args.rounds)
    print("fit", json.dumps(fit), flush=True)
    invoke = bench_invoke(backend, session, role, model_data, args.requests)
    print("invoke", json.dumps(invoke), flush=True)
    return fit, invoke


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="process")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--in-process", action="store_true",
                        help="start the twin in this process (as sagetwin.aws.start() does)")
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "twin.json"))
    parser.add_argument("--under-exec", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.in_process and not args.under_exec:
        command = [sys.executable, "-c", "import sys; from sagetwin.cli import main; sys.exit(main())", "exec",
                   "--backend", args.backend, "--no-persist", "--", sys.executable, __file__, "--under-exec",
                   "--backend", args.backend, "--rounds", str(args.rounds), "--requests", str(args.requests),
                   "--json", args.json]
        sys.exit(subprocess.call(command, cwd=REPO))
    if args.in_process:
        with sagetwin.aws.start(backend=args.backend, persist=False):
            fit, invoke = measure(args, args.backend)
    else:
        fit, invoke = measure(args, args.backend)
    report = {"backend": args.backend, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "twin": "in the measuring process" if args.in_process else "its own process (sagetwin exec)",
              "fit": fit, "invoke": invoke}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
