"""`metric_definitions` → `TrainingJobAnalytics`, and `HuggingFace.attach(name)` → `deploy` →
`predict`, as a SageMaker SDK v2 user's cells (`sdk_workflow/attach_and_metrics.py`) through
`sagetwin exec` on each backend that runs jobs and endpoints; nothing is left running."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.test_aws_twin import leftovers
from tests.test_local_backend import no_leftover_containers, require_docker  # noqa: F401 - fixture

CELLS = Path(__file__).parent / "sdk_workflow" / "attach_and_metrics.py"


def run_cells(backend: str, tiny_model, folder: Path) -> dict:
    for path in tiny_model.local_path.iterdir():
        if path.is_file() and not path.name.startswith("."):
            shutil.copy(path, folder / path.name)
    since = time.time() - 0.1
    result = run_cli("exec", "--backend", backend, "--no-persist", "--", sys.executable, str(CELLS), str(folder),
                     timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert not leftovers(since), "the twin of `sagetwin exec`, its jobs and endpoints all end with it"
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def check_cells(result: dict) -> None:
    assert result["metrics"] == ["eval_accuracy", "eval_f1", "eval_loss", "loss"]
    assert result["eval_accuracy"] == [0.75]
    assert result["same_model"] is True
    assert set(result["answer"][0]) == {"label", "score"}


@pytest.mark.slow
def test_attach_and_metrics_cells_on_process(tiny_model, tmp_path):
    check_cells(run_cells("process", tiny_model, tmp_path))


@pytest.mark.docker
@pytest.mark.slow
def test_attach_and_metrics_cells_on_local(tiny_model, tmp_path, no_leftover_containers):  # noqa: F811
    require_docker()
    check_cells(run_cells("local", tiny_model, tmp_path))
