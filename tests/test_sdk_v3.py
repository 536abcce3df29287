"""SageMaker SDK v3 code against the twin, unchanged, from a virtualenv of its own (sagetwin's
backends keep v2): ``ModelTrainer.train(wait=True, logs=True)`` passes v3's IAM role check
(``iam:SimulatePrincipalPolicy``), sends ``ContainerEntrypoint``/``ContainerArguments`` with its
``sm_drivers`` channel, and the job runs on `process` with the container's literal /opt/ml paths."""

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


@pytest.mark.slow
@pytest.mark.skipif(not KERNEL_ALLOWS_NAMESPACES, reason="this kernel refuses mount namespaces")
def test_a_v3_model_trainer_trains_through_the_twin_on_process(v3_python):
    since = time.time() - 0.1
    result = run_cli("exec", "--backend", "process", "--no-persist", "--", v3_python, str(V3 / "model_trainer.py"),
                     str(V3 / "source"), timeout=900)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert not leftovers(since), "the twin of `sagetwin exec` and its job end with it"
    # the job's own lines, printed live by v3's logs=True
    assert [line for line in out.splitlines() if line.startswith("v3 step ")] == [
        "v3 step 1 of 3", "v3 step 2 of 3", "v3 step 3 of 3"]
    report = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert report["status"] == "Completed"
    assert report["image"].endswith("huggingface-pytorch-training:1.13-transformers4.26.0-gpu-py39-cu117-ubuntu20.04")
    assert report["model"].startswith("s3://") and report["model"].endswith("/output/model.tar.gz")
