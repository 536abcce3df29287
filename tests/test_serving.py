"""Serving follows the Hugging Face inference toolkit: task inference, content types, inference.py overrides."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import pytest

import sagetwin
from sagetwin.core.progress import SilentReporter
from sagetwin.emulation.artifacts import pack_model
from tests.conftest import TRAIN_SCRIPTS

pytestmark = pytest.mark.slow


def archive_with_code(trained, tmp_path: Path, inference_py: str) -> str:
    model_dir = tmp_path / "model"
    with tarfile.open(trained.model_data[len("file://"):]) as tar:
        tar.extractall(model_dir, filter="data")
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text(inference_py)
    return str(pack_model(model_dir, tmp_path / "model.tar.gz"))


def deploy(model_data: str, **kwargs):
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="process", reporter=SilentReporter())
    return job.deploy(model_data=model_data, **kwargs)


def test_task_from_hf_task_and_csv_input(trained_tiny, no_leftover_processes):
    with deploy(trained_tiny.model_data) as predictor:  # no HF_TASK: the architecture implies classification
        answer = predictor.predict("inputs\nfirst review\nsecond review\n", content_type="text/csv")
        assert [set(a) for a in answer] == [{"label", "score"}] * 2
    # HF_TASK names another task than the one the model implies: the endpoint must follow it
    with deploy(trained_tiny.model_data, env={"HF_TASK": "feature-extraction"}) as predictor:
        vectors = predictor.predict({"inputs": "first review"})
    hidden = vectors[0] if isinstance(vectors[0][0], list) else vectors  # [tokens][hidden], batched or not
    assert all(isinstance(x, float) for token in hidden for x in token) and len(hidden[0]) > 2


def test_model_fn_and_predict_fn_overrides(trained_tiny, tmp_path, no_leftover_processes):
    code = '''
from transformers import pipeline

def model_fn(model_dir):
    return pipeline("text-classification", model=model_dir, tokenizer=model_dir)

def predict_fn(data, model):
    result = model(data["inputs"])
    return {"custom": True, "label": result[0]["label"], "n_chars": len(data["inputs"])}
'''
    with deploy(archive_with_code(trained_tiny, tmp_path, code)) as predictor:
        answer = predictor.predict({"inputs": "twelve chars"})
    assert answer["custom"] is True and answer["n_chars"] == 12
    assert answer["label"] in {"NEGATIVE", "POSITIVE"}


def test_transform_fn_with_context_argument(trained_tiny, tmp_path, no_leftover_processes):
    code = '''
import json

def transform_fn(model, input_data, content_type, accept, context):
    text = json.loads(input_data)["inputs"]
    return json.dumps({"upper": text.upper(), "accept": accept, "has_context": context is not None})
'''
    with deploy(archive_with_code(trained_tiny, tmp_path, code)) as predictor:
        assert predictor.predict({"inputs": "abc"}) == {"upper": "ABC", "accept": "application/json",
                                                        "has_context": True}


def test_transform_fn_mixed_with_input_fn_fails_to_start_with_the_toolkit_message(trained_tiny, tmp_path,
                                                                                   no_leftover_processes):
    code = '''
def input_fn(input_data, content_type):
    return input_data

def transform_fn(model, input_data, content_type, accept):
    return input_data
'''
    with pytest.raises(sagetwin.EndpointError, match="failed to start") as info:
        deploy(archive_with_code(trained_tiny, tmp_path, code))
    assert "Cannot use transform_fn implementation in conjunction with" in info.value.details


def test_body_that_is_not_an_object_gets_the_toolkits_400(trained_tiny, no_leftover_processes):
    with deploy(trained_tiny.model_data) as predictor:
        with pytest.raises(sagetwin.InvocationError) as info:
            predictor.predict("just a string body")  # the toolkit calls data.pop("inputs", data)
        assert info.value.status == 400 and "pop" in str(info.value)
        assert predictor.predict({"inputs": "still serving"})[0]["label"] in {"NEGATIVE", "POSITIVE"}


def test_a_server_that_takes_the_port_first_is_never_taken_for_the_endpoint(trained_tiny, monkeypatch,
                                                                            no_leftover_processes):
    """The model server binds port 0 itself and reports what it got: a port chosen, released and
    bound later could meanwhile belong to another server, whose /ping would pass for ours."""
    import http.server
    import threading

    import sagetwin.emulation.processes as processes

    class Impostor(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            body = b'[{"label": "IMPOSTOR", "score": 1.0}]'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    impostor = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Impostor)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    # the race, made certain: whatever free port sagetwin would pick is taken before its server binds
    monkeypatch.setattr(processes, "free_port", lambda host="127.0.0.1": impostor.server_address[1])
    try:
        with deploy(trained_tiny.model_data) as predictor:
            answer = predictor.predict({"inputs": "a wonderful film"})
            assert predictor.endpoint.port != impostor.server_address[1]
        assert answer[0]["label"] != "IMPOSTOR"
    finally:
        impostor.shutdown()
        impostor.server_close()


def test_sagemaker_model_server_workers_serve_requests_side_by_side(trained_tiny, tmp_path, no_leftover_processes):
    """As MMS on the DLC: N workers, each with its own loaded model, one request at a time each."""
    from concurrent.futures import ThreadPoolExecutor

    code = '''
import time

def model_fn(model_dir):
    return object()

def predict_fn(data, model):
    time.sleep(1.0)
    return [{"label": str(id(model)), "score": 1.0}]
'''
    with deploy(archive_with_code(trained_tiny, tmp_path, code), env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}) \
            as predictor:
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda _: predictor.predict({"inputs": "x"})[0]["label"], range(2)))
    assert len(set(answers)) == 2, f"both requests went to one worker: {answers}"


def test_a_bad_worker_count_fails_the_deploy_naming_it(trained_tiny, no_leftover_processes):
    with pytest.raises(sagetwin.EndpointError) as failed:
        deploy(trained_tiny.model_data, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "many"})
    assert "SAGEMAKER_MODEL_SERVER_WORKERS='many' is not a whole number" in str(failed.value.render())


SLOW_ON_REQUEST = '''
import time

def predict_fn(data, model):
    if data["inputs"] == "slow":
        time.sleep(3.5)
    return model(data["inputs"])
'''


def test_a_prediction_past_invocation_timeout_fails_for_its_caller_and_the_endpoint_serves_on(
        trained_tiny, tmp_path, no_leftover_processes):
    """SageMaker's 60 s per invocation, on `process`, set to 2 s: the caller gets the runtime's
    timeout after 2 s (not 60, not when the model finally answers), and the endpoint still answers
    a quick request once the slow prediction is done (one worker: it finishes it first, as a
    container does)."""
    from sagetwin.core.limits import INVOCATION_TIMED_OUT

    with deploy(archive_with_code(trained_tiny, tmp_path, SLOW_ON_REQUEST), invocation_timeout=2) as predictor:
        started = time.monotonic()
        with pytest.raises(sagetwin.InvocationError) as info:
            predictor.predict({"inputs": "slow"})
        waited = time.monotonic() - started
        assert 1.5 < waited < 3.0, f"answered after {waited:.1f} s"  # the sleep is 3.5 s
        assert INVOCATION_TIMED_OUT in str(info.value) and "(after 2 s)" in str(info.value)
        time.sleep(max(0.0, started + 4.0 - time.monotonic()))  # the worker is busy with the slow one till then
        assert predictor.predict({"inputs": "quick"})[0]["label"] in {"NEGATIVE", "POSITIVE"}
