"""A person's own tests, with the pytest plugin, on the backends other than `process`: `local`
(Docker, where an engine runs) and `sagemaker` against the AWS twin under `sagetwin exec`, where
a paid backend runs only once the person allows its billed launches."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.test_pytest_plugin_and_check import GOOD_TRAIN, make_project

pytestmark = pytest.mark.slow


def run_pytest(project, *args: str, under_twin: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["SAGETWIN_REQUIRE_BACKEND"] = "1"  # a backend that cannot run here fails, never skips
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]  # not -q: the header is checked
    if under_twin:
        command = [sys.executable, "-m", "sagetwin.cli", "exec", "--backend", "process", "--no-persist", "--", *command]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.docker
def test_the_users_tests_run_on_local_in_docker(tmp_path, no_leftover_processes):
    from tests.test_local_backend import all_containers, require_docker

    require_docker()
    before = all_containers()
    project = make_project(tmp_path / "p", GOOD_TRAIN)
    result = run_pytest(project, "--sagetwin-backend", "local")
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]
    assert "sagetwin: backend local" in result.stdout  # the header says which backend ran
    assert all_containers() == before  # the endpoint the test deployed is gone with its container


def test_the_users_tests_run_on_sagemaker_against_the_twin_once_billing_is_allowed(tmp_path, no_leftover_processes):
    project = make_project(tmp_path / "p", GOOD_TRAIN)
    refused = run_pytest(project, "--sagetwin-backend", "sagemaker", under_twin=True)
    assert refused.returncode == 1, refused.stdout[-3000:] + refused.stderr[-2000:]
    assert "launches billed resources; not allowed" in refused.stdout  # the header, before any test
    assert "pass --sagetwin-allow-billed once that is what you want" in refused.stdout
    assert "Uploading" not in refused.stdout + refused.stderr and "CreateTrainingJob" not in refused.stderr

    allowed = run_pytest(project, "--sagetwin-backend", "sagemaker", "--sagetwin-allow-billed", "-rA",
                         under_twin=True)
    assert allowed.returncode == 0 and "1 passed" in allowed.stdout, allowed.stdout[-3000:] + allowed.stderr[-2000:]
    log = allowed.stdout  # -rA shows the passing test's captured log: the plan came before the launch
    assert "sagemaker: training: 1 x ml.p3.2xlarge at $3.825/h" in log
    assert "sagemaker: endpoint: 1 x ml.g4dn.xlarge at $0.736/h" in log
