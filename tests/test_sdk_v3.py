"""SageMaker SDK v3 code against the twin, unchanged, from a virtualenv of its own (sagetwin's
backends keep v2), on each backend that runs jobs and endpoints: ``ModelTrainer.train(wait=True,
logs=True)`` passes v3's IAM role check (``iam:SimulatePrincipalPolicy``) and sends
``ContainerEntrypoint``/``ContainerArguments`` with its ``sm_drivers`` channel, which run with the
container's literal /opt/ml paths; v3's ``Model`` → ``EndpointConfig`` → ``Endpoint`` serve the
model it trained, and ``invoke`` answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.test_aws_twin import leftovers
from tests.test_local_backend import no_leftover_containers, require_docker  # noqa: F401 - fixture
from tests.test_opt_ml_paths import KERNEL_ALLOWS_NAMESPACES

V3 = Path(__file__).parent / "sdk_v3"
# kept between runs (outside the clone): creating it takes minutes, the index being reachable
V3_VENV = Path(os.environ.get("SAGETWIN_TEST_V3_VENV", Path.home() / ".cache" / "sagetwin-tests" / "sdk-v3-venv"))
V3_REQUIREMENT = "sagemaker>=3,<4"


@pytest.fixture(scope="session")
def v3_python() -> str:
    python = V3_VENV / "bin" / "python"
    marker = V3_VENV / ".complete"
    if not marker.is_file() or marker.read_text() != V3_REQUIREMENT:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(V3_VENV)], check=True, timeout=300)
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                               V3_REQUIREMENT], capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stderr[-3000:]
        marker.write_text(V3_REQUIREMENT)
    version = subprocess.run([str(python), "-c", "from importlib.metadata import version; print(version('sagemaker'))"],
                             capture_output=True, text=True, timeout=300)
    assert version.returncode == 0 and version.stdout.startswith("3."), version.stderr[-2000:]
    return str(python)


def run_train_and_deploy(backend: str, v3_python: str, tiny_model) -> tuple[str, dict]:
    since = time.time() - 0.1
    result = run_cli("exec", "--backend", backend, "--no-persist", "--", v3_python, str(V3 / "train_and_deploy.py"),
                     str(V3 / "source"), str(tiny_model.local_path), timeout=900)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert not leftovers(since), "the twin of `sagetwin exec`, its job and its endpoint end with it"
    report = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])
    return out, report


def check_train_and_deploy(out: str, report: dict) -> None:
    # the job's own lines, printed live by v3's logs=True: its hyperparameter came through, and the
    # literal /opt/ml/model it saved to is where SageMaker takes the model from
    assert [line for line in out.splitlines() if line.startswith(("epoch ", "model saved"))] == [
        "epoch 1 of 2", "epoch 2 of 2", "model saved to /opt/ml/model"]
    assert report["training_status"] == "Completed"
    assert report["model"].startswith("s3://") and report["model"].endswith("/output/model.tar.gz")
    assert report["image"].endswith("huggingface-pytorch-inference:1.13-transformers4.26.0-gpu-py39-cu117-ubuntu20.04")
    assert report["status"] == "InService"
    [answer] = report["answer"]
    assert answer["label"] in ("POSITIVE", "NEGATIVE") and 0.0 <= answer["score"] <= 1.0


@pytest.mark.slow
@pytest.mark.skipif(not KERNEL_ALLOWS_NAMESPACES, reason="this kernel refuses mount namespaces")
def test_v3_trains_deploys_and_predicts_through_the_twin_on_process(v3_python, tiny_model):
    check_train_and_deploy(*run_train_and_deploy("process", v3_python, tiny_model))


@pytest.mark.slow
@pytest.mark.docker
def test_v3_trains_deploys_and_predicts_through_the_twin_on_local(v3_python, tiny_model,
                                                                 no_leftover_containers):  # noqa: F811
    require_docker()
    check_train_and_deploy(*run_train_and_deploy("local", v3_python, tiny_model))
