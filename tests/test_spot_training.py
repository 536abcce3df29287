"""Managed spot training through `sagetwin exec --interrupt-spot` on each backend that runs jobs,
as a SageMaker SDK v2 user's cells (`sdk_workflow/spot_training.py`): the first job is
interrupted once and completes from its checkpoint, the second resumes from the first's newest
one, and nothing is left running."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.test_aws_twin import leftovers
from tests.test_local_backend import no_leftover_containers, require_docker  # noqa: F401 - fixture

SPOT_SDK = Path(__file__).parent / "sdk_workflow" / "spot_training.py"


def run_spot_cells(backend: str) -> list[dict]:
    since = time.time() - 0.1
    result = run_cli("exec", "--backend", backend, "--no-persist", "--interrupt-spot", "/saved checkpoint-3$/", "--",
                     sys.executable, str(SPOT_SDK), "6", timeout=1500)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert not leftovers(since), "the twin of `sagetwin exec` and its jobs all end with it"
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def check_spot_cells(first: dict, second: dict, *, sigterm_reaches_the_script: bool) -> None:
    assert first["status"] == second["status"] == "Completed"
    assert first["transitions"] == ["Starting", "Downloading", "Training", "Interrupted", "Starting", "Downloading",
                                    "Training", "Uploading", "Completed"]
    assert first["billable"] < first["training"]
    assert first["resumed"][0] == "resuming from nothing" and len(first["resumed"]) == 2
    resumed_at = int(first["resumed"][1].rsplit("-", 1)[1])
    left = 6 - resumed_at  # the restart did only the steps left, from the newest checkpoint that reached S3
    assert resumed_at >= 3 and first["saved"][-left:] == list(range(resumed_at + 1, 7))
    assert first["saved"][:-left] == list(range(1, len(first["saved"]) - left + 1))
    if sigterm_reaches_the_script:
        assert first["sigterm"] == [f"received SIGTERM at step {resumed_at}"]
    # the second resumes from the first's last checkpoint; the rehearsal's point (step 3) is behind it
    assert second["resumed"] == ["resuming from checkpoint-6"] and "Interrupted" not in second["transitions"]
    assert second["saved"] == [7, 8]
    assert first["model_data"].endswith("/output/model.tar.gz")


def test_spot_cells_on_process():
    first, second = run_spot_cells("process")
    check_spot_cells(first, second, sigterm_reaches_the_script=True)


@pytest.mark.docker
@pytest.mark.slow
def test_spot_cells_on_local(no_leftover_containers):  # noqa: F811
    require_docker()
    first, second = run_spot_cells("local")
    # a container's PID 1 decides whether the script sees SIGTERM; the job is stopped either way
    check_spot_cells(first, second, sigterm_reaches_the_script=False)
