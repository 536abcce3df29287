"""Benchmarks for the process backend, each a ratio against a baseline measured in the same run.

1. fit overhead: `process` backend fit wall time / the same train.py run directly with the
   same arguments and SM_* environment (target <= 1.10);
2. serving overhead: endpoint p50 latency / calling the same pipeline in-process
   (target: under 5 ms added at p50);
3. padding: training examples/s of train.py (length-grouped dynamic padding) / the guide's
   pad-to-512 preprocessing, on IMDb-like review lengths, MiniLM, batch 16 (target >= 1.8x);
   dynamic padding of random batches is shown too.

Usage: python bench/bench_process.py [--quick] [--json bench/results/process.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import sagetwin  # noqa: E402
from sagetwin.core.paths import unique_name  # noqa: E402
from sagetwin.core.progress import SilentReporter  # noqa: E402
from sagetwin.core.spec import TrainingSpec  # noqa: E402
from sagetwin.emulation import contract  # noqa: E402
from sagetwin.guide.data import prepare_datasets, resolve_model  # noqa: E402

TRAIN_SCRIPTS = REPO / "train_scripts"


def make_job(hps: dict) -> sagetwin.HuggingFaceJob:
    return sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, hyperparameters=hps, backend="process",
                                   reporter=SilentReporter())


def run_direct(hps: dict, channels: dict[str, str], root: Path) -> float:
    """The baseline: lay out the same folder and environment, then `python train.py ARGS` by hand."""
    spec = TrainingSpec(job_name=unique_name("direct"), entry_point="train.py", source_dir=TRAIN_SCRIPTS,
                        hyperparameters=hps, inputs=channels)
    run = contract.prepare_run(spec, root)
    env = {**os.environ, **run.env, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    subprocess.run([sys.executable, "train.py", *run.args], cwd=run.folder.code_dir, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def bench_fit(repeats: int, steps: int) -> dict:
    model = resolve_model("tiny")
    channels = {**prepare_datasets("sample", model.tokenizer_source, train_size=2000, test_size=200),
                **model.channels()}
    hps = {"epochs": 1, "max_steps": steps, "train_batch_size": 32, "model_name": model.hyperparameter,
           "warmup_steps": 0, "logging_steps": 50}
    process_times, direct_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):  # alternate so drift hits both sides alike
            started = time.monotonic()
            make_job(hps).fit(channels)
            process_times.append(time.monotonic() - started)
            direct_times.append(run_direct(hps, channels, Path(tmp) / f"direct-{i}"))
    p, d = statistics.median(process_times), statistics.median(direct_times)
    return {"process_fit_s": p, "direct_fit_s": d, "ratio": p / d, "target": "<= 1.10",
            "process_all_s": process_times, "direct_all_s": direct_times, "steps": steps}


def bench_latency(requests: int) -> dict:
    model = resolve_model("tiny")
    channels = {**prepare_datasets("sample", model.tokenizer_source, train_size=200, test_size=50),
                **model.channels()}
    job = make_job({"epochs": 1, "max_steps": 2, "model_name": model.hyperparameter, "warmup_steps": 0})
    result = job.fit(channels)
    body = {"inputs": "It feels like a curtain closing...there was an elegance in the way they moved."}
    with job.deploy() as predictor:
        for _ in range(20):
            predictor.predict(body)
        endpoint_ms = []
        for _ in range(requests):
            started = time.perf_counter()
            predictor.predict(body)
            endpoint_ms.append((time.perf_counter() - started) * 1000)
        model_dir = Path(result.details["run_dir"]) / "opt_ml" / "model"
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(model_dir), tokenizer=str(model_dir), device=-1)
    for _ in range(20):
        pipe(body["inputs"])
    inproc_ms = []
    for _ in range(requests):
        started = time.perf_counter()
        pipe(body["inputs"])
        inproc_ms.append((time.perf_counter() - started) * 1000)
    e50, i50 = statistics.median(endpoint_ms), statistics.median(inproc_ms)
    return {"endpoint_p50_ms": e50, "inprocess_p50_ms": i50, "overhead_p50_ms": e50 - i50, "ratio": e50 / i50,
            "endpoint_p90_ms": sorted(endpoint_ms)[int(0.9 * requests)],
            "inprocess_p90_ms": sorted(inproc_ms)[int(0.9 * requests)], "requests": requests,
            "target": "overhead < 5 ms at p50"}


def bench_padding(train_size: int, repeats: int, model_name: str = "minilm") -> dict:
    """Each round runs the three variants in a rotated order, so drift (heat, the page cache, other
    work on the machine) hits all of them alike; ratios are taken within a round, then the median
    and the spread (min..max) over rounds are reported."""
    model = resolve_model(model_name)
    variants = {"pad_to_512 (guide)": (True, False), "dynamic, random batches": (False, False),
                "dynamic, length-grouped (train.py)": (False, True)}
    channels = {label: {**prepare_datasets("sample", model.tokenizer_source, train_size=train_size, test_size=16,
                                           profile="imdb", pad_to_max_length=pad), **model.channels()}
                for label, (pad, _) in variants.items()}
    labels = list(variants)
    rounds: list[dict[str, float]] = []
    for r in range(repeats):
        measured = {}
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            hps = {"epochs": 1, "train_batch_size": 16, "eval_batch_size": 16, "model_name": model.hyperparameter,
                   "warmup_steps": 0, "group_by_length": variants[label][1], "logging_steps": 1000}
            measured[label] = make_job(hps).fit(channels[label]).metrics["train_samples_per_second"]
            print(f"padding round {r + 1}/{repeats}: {label}: {measured[label]:.2f} examples/s", flush=True)
        rounds.append(measured)

    def summary(values: list[float]) -> dict:
        return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}

    base = "pad_to_512 (guide)"
    return {
        "examples_per_s": {label: summary([r[label] for r in rounds]) for label in labels},
        "ratio_grouped": summary([r["dynamic, length-grouped (train.py)"] / r[base] for r in rounds]),
        "ratio_random": summary([r["dynamic, random batches"] / r[base] for r in rounds]),
        "repeats": repeats, "order": "rotated each round", "train_size": train_size, "batch_size": 16,
        "model": model_name, "target": ">= 1.8x",
        # transformers' LengthGroupedSampler sorts mega-batches of min(n // (4 * batch), 50) batches:
        # below 64 x 16 examples a mega-batch is one batch and grouping cannot group
        "grouping_can_group": train_size >= 64 * 16,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats and examples (a smoke run)")
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "process.json"))
    parser.add_argument("--only", choices=["fit", "latency", "padding"], action="append")
    parser.add_argument("--repeats", type=int, default=3, help="padding: rounds of the three variants (>= 3)")
    parser.add_argument("--padding-examples", type=int, default=2048,
                        help="padding: training examples per fit (>= 1024 for length grouping to group)")
    parser.add_argument("--padding-model", default="tiny", help="padding: tiny (default: fast enough for a real "
                        "epoch) | minilm (docs/benchmarks.md's MiniLM row: --padding-examples 96)")
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be at least 3: a median and a spread need three rounds")
    only = set(args.only or ["fit", "latency", "padding"])
    report: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "platform": platform.platform()}}
    if "fit" in only:
        report["fit"] = bench_fit(repeats=2 if args.quick else 3, steps=20 if args.quick else 60)
        f = report["fit"]
        print(f"fit: process {f['process_fit_s']:.2f}s / direct {f['direct_fit_s']:.2f}s = {f['ratio']:.3f}")
    if "latency" in only:
        report["latency"] = bench_latency(100 if args.quick else 500)
        lat = report["latency"]
        print(f"latency p50: endpoint {lat['endpoint_p50_ms']:.2f} ms / in-process {lat['inprocess_p50_ms']:.2f} ms"
              f" (overhead {lat['overhead_p50_ms']:.2f} ms, ratio {lat['ratio']:.2f})")
    if "padding" in only:
        report["padding"] = bench_padding(64 if args.quick else args.padding_examples,
                                          repeats=3 if args.quick else args.repeats, model_name=args.padding_model)
        pad = report["padding"]
        for label, value in pad["examples_per_s"].items():
            print(f"padding: {label}: median {value['median']:.2f} examples/s ({value['min']:.2f}..{value['max']:.2f})")
        for name in ("ratio_grouped", "ratio_random"):
            ratio = pad[name]
            print(f"padding: {name} (vs pad-512, within each round): median {ratio['median']:.2f}x "
                  f"({ratio['min']:.2f}..{ratio['max']:.2f}x over {pad['repeats']} rounds)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
