"""GPU check of the process backend: trains and serves the tiny model on CUDA when torch sees one.

Run on a machine with an NVIDIA GPU: python scripts/gpu_check.py OUT_DIR [PREPARED_DIR]
Exits non-zero if training or serving did not use the GPU. PREPARED_DIR (made elsewhere with
``python scripts/gpu_check.py --prepare DIR``) holds the tiny model and tokenized sample data,
for GPU machines whose Python cannot run the preparation step.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def prepare(target: Path) -> None:
    import shutil

    from sagetwin.guide.data import build_tiny_model, prepare_datasets

    model = build_tiny_model(target / "model")
    for split, path in prepare_datasets("sample", str(model), train_size=2000, test_size=500).items():
        shutil.copytree(path, target / split, dirs_exist_ok=True)
    print(f"prepared {target}")


def main() -> int:
    if sys.argv[1:2] == ["--prepare"]:
        prepare(Path(sys.argv[2]))
        return 0
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("gpu-check")
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SAGETWIN_HOME", str(out / "home"))
    import torch

    import sagetwin
    from sagetwin.core.progress import StreamReporter
    from sagetwin.guide.data import prepare_datasets, resolve_model

    report: dict = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
                    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    if len(sys.argv) > 2:
        prepared = Path(sys.argv[2]).resolve()
        channels = {name: str(prepared / name) for name in ("train", "test", "model")}
        model_name = "/opt/ml/input/data/model"
    else:
        model = resolve_model("tiny")
        channels = {**prepare_datasets("sample", model.tokenizer_source, train_size=2000, test_size=500),
                    **model.channels()}
        model_name = model.hyperparameter
    job = sagetwin.HuggingFaceJob("train.py", source_dir=REPO / "train_scripts", backend="process",
                                  hyperparameters={"epochs": 1, "max_steps": 60, "train_batch_size": 32,
                                                   "model_name": model_name, "warmup_steps": 0,
                                                   "logging_steps": 20}, reporter=StreamReporter())
    started = time.monotonic()
    result = job.fit(channels)
    report["fit_s"] = round(time.monotonic() - started, 2)
    training_log = Path(result.details["log"]).read_text()
    report["trained_on"] = [line.split("training on ", 1)[1] for line in training_log.splitlines()
                            if "training on " in line]
    report["metrics"] = result.metrics
    with job.deploy() as predictor:
        server_log = (Path(os.environ["SAGETWIN_HOME"]) / "endpoints" / predictor.endpoint_name / "server.log")
        report["prediction"] = predictor.predict({"inputs": "a wonderful, moving film"})
        times = []
        for _ in range(50):
            t = time.perf_counter()
            predictor.predict({"inputs": "a wonderful, moving film"})
            times.append((time.perf_counter() - t) * 1000)
        report["endpoint_p50_ms"] = round(sorted(times)[25], 3)
        report["served_on"] = [line for line in server_log.read_text().splitlines() if "model loaded on" in line]
    report["endpoint_deleted"] = predictor.deleted
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    ok = (report["cuda"] and any("cuda" in d for d in report["trained_on"])
          and any("cuda" in line for line in report["served_on"]) and report["endpoint_deleted"])
    print("GPU CHECK", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
