"""End to end on the process backend: a real (tiny) training run, a real server, a real call."""

from __future__ import annotations

import json
import os
import socket
import stat

import pytest

import sagetwin
from sagetwin.core.progress import SilentReporter
from tests.conftest import TRAIN_SCRIPTS, run_cli

pytestmark = pytest.mark.slow


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def test_fit_deploy_predict_delete(sample_channels, tiny_hyperparameters, no_leftover_processes):
    job = sagetwin.HuggingFaceJob(entry_point="train.py", source_dir=str(TRAIN_SCRIPTS),
                                  hyperparameters=tiny_hyperparameters, backend="process",
                                  reporter=SilentReporter())
    result = job.fit({"train": sample_channels["train"], "test": sample_channels["test"],
                      "model": sample_channels["model"]})
    assert result.backend == "process"
    assert set(result.metrics) >= {"accuracy", "f1", "precision", "recall"}
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
    assert job.model_data == result.model_data

    predictor = job.deploy()
    endpoint = predictor.endpoint
    assert port_open(endpoint.host, endpoint.port)
    answer = predictor.predict({"inputs": "I loved every minute of it."})
    assert isinstance(answer, list) and len(answer) == 1
    assert set(answer[0]) == {"label", "score"}
    assert answer[0]["label"] in {"NEGATIVE", "POSITIVE"} and 0.0 <= answer[0]["score"] <= 1.0
    batch = predictor.predict({"inputs": ["great", "awful"], "parameters": {"top_k": 2}})
    assert len(batch) == 2 and all(len(item) == 2 for item in batch)
    predictor.delete_endpoint()
    assert predictor.deleted and endpoint.proc.poll() is not None
    assert not port_open(endpoint.host, endpoint.port)


def test_context_manager_deletes_the_endpoint_on_errors(trained_tiny, no_leftover_processes):
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="process",
                                  reporter=SilentReporter())
    with pytest.raises(ZeroDivisionError):
        with job.deploy(model_data=trained_tiny.model_data) as predictor:
            endpoint = predictor.endpoint
            assert predictor.predict({"inputs": "fine"})[0]["label"]
            1 / 0  # noqa: B018 - the user's code fails while the endpoint is up
    assert predictor.deleted
    assert not port_open(endpoint.host, endpoint.port)


def test_a_process_run_keeps_every_folder_it_makes_in_the_home_private(tmp_path, no_leftover_processes):
    """Under a 022 umask, the folders a run makes in sagetwin's home (the model it fetched, the
    datasets, the run folder, the endpoint's unpacked model, the records) are 0700: nobody else reads them."""
    home = tmp_path / "home"
    umask = os.umask(0o022)
    try:
        result = run_cli("run", "--backend", "process", "--model", "tiny", "--max-steps", "2", "--json",
                         "--train-size", "32", "--test-size", "16", env={"SAGETWIN_HOME": str(home)})
    finally:
        os.umask(umask)
    assert result.returncode == 0, result.stderr[-3000:]
    job = json.loads(result.stdout)["training"]["job_name"]
    folders = [home, *(path for path in home.iterdir() if path.is_dir()), home / "runs" / job]
    assert {path.name for path in folders} >= {"models", "data", "runs", "endpoints", "unpacked-models", "run-records"}
    modes = {str(path): oct(stat.S_IMODE(path.stat().st_mode)) for path in folders}
    assert modes == dict.fromkeys(modes, "0o700")


def test_cli_run_json(no_leftover_processes):
    result = run_cli("run", "--backend", "process", "--model", "tiny", "--max-steps", "10", "--json",
                     "--train-size", "200", "--test-size", "50")
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout)
    assert data["backend"] == "process"
    assert set(data["training"]["metrics"]) >= {"accuracy", "f1", "precision", "recall"}
    assert data["training"]["model_data"].endswith("model.tar.gz")
    assert data["prediction"][0]["label"] in {"NEGATIVE", "POSITIVE"}
    assert data["endpoint"]["deleted"] is True
    assert set(data["timings"]) >= {"prepare_s", "fit_s", "deploy_s", "predict_s", "delete_s", "total_s"}
    # progress goes to stderr, so stdout is exactly one JSON document
    assert "step 10/10" in result.stderr and "endpoint" in result.stderr
    # each logging step is printed once: no second copy of the Trainer's log dict
    assert "{'loss'" not in result.stderr and "{'eval_loss'" not in result.stderr
    steps = [line.split("|", 1)[-1].strip() for line in result.stderr.splitlines() if " it/s) {" in line]
    assert steps and len(steps) == len(set(steps)), steps
