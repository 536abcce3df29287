"""Bad input gets one clear paragraph naming the problem and the fix, and leaves nothing running."""

from __future__ import annotations

import http.client
import json
import re
import socket
from pathlib import Path

import pytest

import sagetwin
from sagetwin.core.progress import SilentReporter
from tests.conftest import TRAIN_SCRIPTS, run_cli


def job(**kwargs):
    kwargs.setdefault("reporter", SilentReporter())
    kwargs.setdefault("backend", "process")
    return sagetwin.HuggingFaceJob(**kwargs)


def test_missing_source_dir(tmp_path: Path):
    with pytest.raises(sagetwin.ConfigurationError, match="source_dir .* does not exist") as info:
        job(entry_point="train.py", source_dir=tmp_path / "nope")
    assert "source_dir=" in info.value.fix


def test_missing_entry_point_lists_what_is_there():
    with pytest.raises(sagetwin.ConfigurationError, match="entry_point 'trian.py' was not found") as info:
        job(entry_point="trian.py", source_dir=TRAIN_SCRIPTS)
    assert "train.py" in info.value.fix


def test_unknown_backend_lists_installed_ones():
    with pytest.raises(sagetwin.BackendNotFoundError, match="unknown backend 'nosuch'.*process"):
        job(entry_point="train.py", source_dir=TRAIN_SCRIPTS, backend="nosuch")


def test_hyperparameter_that_is_not_json_serialisable():
    with pytest.raises(sagetwin.ConfigurationError, match="'data_dir'.*PosixPath.*not JSON-serialisable") as info:
        job(entry_point="train.py", source_dir=TRAIN_SCRIPTS, hyperparameters={"data_dir": Path("/tmp")})
    assert "str(path)" in info.value.fix


def test_missing_channel_path(tmp_path: Path):
    j = job(entry_point="train.py", source_dir=TRAIN_SCRIPTS)
    with pytest.raises(sagetwin.ConfigurationError, match="input channel 'train' points to .*does not exist"):
        j.fit({"train": str(tmp_path / "missing")})


def test_remote_channel_on_process_backend_says_what_to_do():
    j = job(entry_point="train.py", source_dir=TRAIN_SCRIPTS)
    with pytest.raises(sagetwin.ConfigurationError, match="not on this machine") as info:
        j.fit({"train": "s3://bucket/train"})
    assert "--backend sagemaker" in info.value.fix


def test_script_that_raises_reports_exit_code_and_log_tail(tmp_path: Path, no_leftover_processes):
    (tmp_path / "train.py").write_text("print('starting up')\nimport sys\nraise SystemExit('cannot find the widget')\n")
    j = job(entry_point="train.py", source_dir=tmp_path)
    with pytest.raises(sagetwin.TrainingError) as info:
        j.fit()
    err = info.value
    assert err.exit_code == 1
    assert "exited with code 1" in str(err)
    assert "starting up" in err.log_tail and "cannot find the widget" in err.log_tail


def test_deploy_before_fit():
    j = job(entry_point="train.py", source_dir=TRAIN_SCRIPTS)
    with pytest.raises(sagetwin.ConfigurationError, match="no model to deploy"):
        j.deploy()


@pytest.mark.slow
def test_port_already_taken(trained_tiny, no_leftover_processes):
    j = job(entry_point="train.py", source_dir=TRAIN_SCRIPTS)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(sagetwin.ConfigurationError, match=f"port {port} .* already in use") as info:
            j.deploy(model_data=trained_tiny.model_data, port=port)
    assert "port=0" in info.value.fix


@pytest.mark.slow
def test_bad_requests_get_400_and_the_server_keeps_serving(trained_tiny, no_leftover_processes):
    j = job(entry_point="train.py", source_dir=TRAIN_SCRIPTS)
    with j.deploy(model_data=trained_tiny.model_data) as predictor:
        endpoint = predictor.endpoint
        conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=30)
        for body, content_type in ((b"{not json", "application/json"), (b"\x00\x01", "application/x-unknown")):
            conn.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
            response = conn.getresponse()
            payload = json.loads(response.read())
            assert response.status == 400, payload
            assert payload["code"] == 400 and payload["message"]
        conn.close()
        with pytest.raises(sagetwin.InvocationError) as info:
            predictor.predict(b"{not json")
        assert info.value.status == 400
        # still serving after the bad requests
        answer = predictor.predict({"inputs": "a wonderful film"})
        assert answer[0]["label"] in ("NEGATIVE", "POSITIVE")


@pytest.mark.slow
def test_endpoint_deleted_twice(trained_tiny, no_leftover_processes):
    j = job(entry_point="train.py", source_dir=TRAIN_SCRIPTS)
    predictor = j.deploy(model_data=trained_tiny.model_data)
    predictor.delete_endpoint()
    with pytest.raises(sagetwin.EndpointNotFoundError, match="already deleted"):
        predictor.delete_endpoint()
    with pytest.raises(sagetwin.EndpointNotFoundError, match="was deleted"):
        predictor.predict({"inputs": "x"})


@pytest.mark.slow
def test_model_that_fails_to_load_reports_the_server_log(tmp_path: Path, no_leftover_processes):
    import tarfile

    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"architectures": ["MadeUpForSequenceClassification"]}))
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(broken / "config.json", arcname="config.json")
    j = job(entry_point="train.py", source_dir=TRAIN_SCRIPTS)
    with pytest.raises(sagetwin.EndpointError, match="failed to start: the model server exited") as info:
        j.deploy(model_data=str(archive))
    assert "model failed to load" in info.value.details


def test_cli_prints_one_paragraph_not_a_traceback(tmp_path: Path):
    result = run_cli("run", "--backend", "nosuch", "--model", "tiny")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unknown backend 'nosuch'" in result.stderr and "Fix:" in result.stderr

    result = run_cli("run", "--backend", "process", "--model", str(tmp_path / "no-such-model"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "does not exist" in result.stderr


def test_cli_reports_a_failing_script_with_its_log(tmp_path: Path):
    (tmp_path / "train.py").write_text("raise RuntimeError('boom from the user script')\n")
    result = run_cli("run", "--backend", "process", "--model", "tiny", "--source-dir", str(tmp_path),
                     "--train-size", "16", "--test-size", "8")
    assert result.returncode == 2, result.stderr
    assert "exited with code 1" in result.stderr
    assert "boom from the user script" in result.stderr
    # the script's own traceback is shown; none of sagetwin's frames are
    assert "Traceback (most recent call last)" in result.stderr
    assert not re.search(r'File "[^"]*/sagetwin/(cli|core|backends|emulation|guide)/', result.stderr), result.stderr
