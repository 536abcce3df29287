"""`process` deploy → first answer, cold and warm, against a fresh interpreter that only imports
transformers and builds the same ``pipeline()`` (the floor of any server started from scratch),
all in one run on the same model.tar.gz.

- cold: the program's first deploy (the warm model-server parent starts and imports torch,
  transformers and the toolkit, then forks the endpoint's server);
- warm: each later deploy in the same program (a fork of that parent loads the model only);
- fresh: a deploy with ``SAGETWIN_WARM_SERVING=0`` (a new interpreter per deploy, as before);
- baseline: ``python -c "from transformers import pipeline; pipeline(task, model=DIR)(text)"``.

Usage: python bench/bench_deploy.py [--model tiny|minilm] [--warm 5] [--json bench/results/deploy.json]
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

import sagetwin  # noqa: E402
from sagetwin.core.progress import SilentReporter  # noqa: E402
from sagetwin.emulation.archives import extract_archive  # noqa: E402
from sagetwin.emulation.artifacts import local_path  # noqa: E402
from sagetwin.guide.data import prepare_datasets, resolve_model  # noqa: E402

TRAIN_SCRIPTS = REPO / "train_scripts"
TEXT = "a wonderful, moving film"


def deploy_to_first_answer(model_data: str) -> float:
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="process", reporter=SilentReporter())
    started = time.perf_counter()
    predictor = job.deploy(model_data=model_data)
    try:
        answer = predictor.predict({"inputs": TEXT})
        elapsed = time.perf_counter() - started
        assert isinstance(answer, list) and "label" in answer[0], answer
    finally:
        predictor.delete_endpoint()
    return elapsed


def fresh_pipeline(model_data: str) -> float:
    with tempfile.TemporaryDirectory() as folder:
        extract_archive(local_path(model_data, "model"), Path(folder))
        code = ("from transformers import pipeline; "
                f"print(pipeline('text-classification', model={folder!r})({TEXT!r}))")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--warm", type=int, default=5, help="warm deploys to time")
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "deploy.json"))
    args = parser.parse_args()
    model = resolve_model(args.model)
    channels = {**prepare_datasets("sample", model.tokenizer_source, train_size=64, test_size=32), **model.channels()}
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="process", reporter=SilentReporter(),
                                  hyperparameters={"epochs": 1, "max_steps": 2, "model_name": model.hyperparameter})
    model_data = job.fit(channels).model_data
    size_mb = local_path(model_data, "model").stat().st_size / 1e6
    os.environ["SAGETWIN_WARM_SERVING"] = "1"
    cold = deploy_to_first_answer(model_data)
    print(f"cold {cold:.2f} s", flush=True)
    warm, fresh, baseline = [], [], []
    for _ in range(args.warm):  # alternated, so that drift on the machine touches all three alike
        warm.append(deploy_to_first_answer(model_data))
        os.environ["SAGETWIN_WARM_SERVING"] = "0"
        fresh.append(deploy_to_first_answer(model_data))
        os.environ["SAGETWIN_WARM_SERVING"] = "1"
        baseline.append(fresh_pipeline(model_data))
        print(f"warm {warm[-1]:.2f} s, fresh interpreter {fresh[-1]:.2f} s, pipeline() baseline "
              f"{baseline[-1]:.2f} s", flush=True)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "model": args.model,
        "model_tar_gz_mb": round(size_mb, 1), "cold_s": round(cold, 2),
        "warm_s": [round(s, 2) for s in warm], "fresh_s": [round(s, 2) for s in fresh],
        "pipeline_baseline_s": [round(s, 2) for s in baseline],
        "warm_median_s": round(statistics.median(warm), 2), "fresh_median_s": round(statistics.median(fresh), 2),
        "baseline_median_s": round(statistics.median(baseline), 2),
        "warm_over_baseline": round(statistics.median(warm) / statistics.median(baseline), 3),
        "target": "warm <= 1.5 s",
    }
    print(json.dumps(report, indent=2))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
