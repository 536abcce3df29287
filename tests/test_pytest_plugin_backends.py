"""A person's own tests, with the pytest plugin, on the backends other than `process`: `local`
(Docker, where an engine runs) and `sagemaker` against the AWS twin under `sagetwin exec`, where
a paid backend runs only once the person allows its billed launches, or against the twin."""

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


def test_a_paid_backend_runs_only_when_allowed_or_against_the_twin(tmp_path, monkeypatch, no_leftover_processes):
    project = make_project(tmp_path / "p", GOOD_TRAIN)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")  # credentials, as a person who could be billed has
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("SAGETWIN_ROLE", "arn:aws:iam::123456789012:role/SageMakerRole")
    for name in ("AWS_ENDPOINT_URL", "SAGETWIN_AWS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    refused = run_pytest(project, "--sagetwin-backend", "sagemaker")
    assert refused.returncode == 1, refused.stdout[-3000:] + refused.stderr[-2000:]
    assert "launches billed resources; not allowed" in refused.stdout  # the header, before any test
    assert "pass --sagetwin-allow-billed once that is what you want" in refused.stdout
    assert "Uploading" not in refused.stdout + refused.stderr  # nothing was sent anywhere

    monkeypatch.delenv("SAGETWIN_ROLE")  # the twin's own role is found, as a notebook's execution role is
    twin = run_pytest(project, "--sagetwin-backend", "sagemaker", "-rA", under_twin=True)
    assert twin.returncode == 0 and "1 passed" in twin.stdout, twin.stdout[-3000:] + twin.stderr[-2000:]
    assert "against the AWS twin at http://127.0.0.1:" in twin.stdout and "(nothing billed)" in twin.stdout
    log = twin.stdout  # -rA shows the passing test's captured log: the plan came before each launch
    assert "sagemaker: training: 1 x ml.p3.2xlarge at $3.825/h" in log
    assert "sagemaker: endpoint: 1 x ml.g4dn.xlarge at $0.736/h" in log
