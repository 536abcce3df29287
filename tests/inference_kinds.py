"""What the inference-kind tests deploy: the tiny classifier as a plain ``model.tar.gz``, the same
with its own ``code/inference.py``, a JSON Lines file of records, and a Hugging Face cache
pre-filled with the model under a Hub id (as ``huggingface-cli download`` leaves it)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

# the custom handlers: a reversed input (so no default pipeline could give it), optionally slow
INFERENCE_PY = """\
import time


def model_fn(model_dir):
    return {"loaded_from": model_dir}


def predict_fn(data, model):
    time.sleep(float(data.get("sleep", 0)))
    return {"custom": data["inputs"][::-1]}
"""
HUB_ID = "sagetwin-tests/tiny-classifier"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def model_archive(model_dir: Path, target: Path, *, inference_py: str | None = None) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                tar.add(path, arcname=path.name)
        if inference_py is not None:
            data = inference_py.encode()
            info = tarfile.TarInfo("code/inference.py")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return target


def records_file(target: Path, count: int) -> Path:
    target.write_text("".join(json.dumps({"inputs": f"review number {n} was a good film"}) + "\n"
                              for n in range(count)))
    return target


def prefilled_hub_cache(model_dir: Path, hf_home: Path, model_id: str = HUB_ID) -> Path:
    """``HF_HOME`` with ``model_id`` in its hub cache: refs/main → snapshots/<commit>/<files>."""
    repo = hf_home / "hub" / ("models--" + model_id.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in model_dir.iterdir():
        if path.is_file() and not path.name.startswith("."):
            shutil.copy2(path, snapshot / path.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return hf_home
