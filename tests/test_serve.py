"""``sagetwin serve``: the printed URL and curl line answer, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from tests.conftest import default_ctrl_c, read_until, signal_and_wait


@pytest.mark.slow
@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_prints_a_working_url_and_curl_line_and_ctrl_c_leaves_nothing(trained_tiny, stop_with):
    serve = subprocess.Popen([sys.executable, "-m", "sagetwin.cli", "serve", trained_tiny.model_data,
                              "--backend", "process"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=default_ctrl_c)
    try:
        url = read_until(serve.stdout, "url   ", timeout=180)[-1].split()[1]
        curl = shlex.split(read_until(serve.stdout, "curl  ", timeout=30)[-1][len("curl  "):])
        started = psutil.Process(serve.pid).children(recursive=True)
        assert started, "the endpoint's server should be a child of the serve command"

        request = urllib.request.Request(url, data=json.dumps({"inputs": "I love this movie!"}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert [set(item) for item in answer] == [{"label", "score"}]
        pasted = subprocess.run(curl, capture_output=True, text=True, timeout=30)  # the line as a person pastes it
        assert pasted.returncode == 0 and json.loads(pasted.stdout) == answer

    except BaseException:
        serve.kill()
        serve.wait()
        raise
    err = signal_and_wait(serve, stop_with, timeout=60)
    assert serve.returncode == 0, err
    assert "deleted" in err.splitlines()[-1]
    time.sleep(0.5)
    alive = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running after serve stopped: {[(p.pid, p.cmdline()) for p in alive]}"
    with pytest.raises(OSError):
        urllib.request.urlopen(url.replace("/invocations", "/ping"), timeout=5)


def test_serve_without_a_model_is_a_clear_error():
    result = subprocess.run([sys.executable, "-m", "sagetwin.cli", "serve", "--backend", "process"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "neither model_data nor env['HF_MODEL_ID']" in result.stderr and "Fix:" in result.stderr


def test_serve_env_values_reach_the_container_as_written():
    from sagetwin.core.serve import _environment

    args = type("Args", (), {"env": ["HF_TASK=text-classification", "FLAG=true", "N=1e3", "my-var=a=b"],
                             "hf_model_id": "./model", "task": None})()
    assert _environment(args) == {"HF_TASK": "text-classification", "FLAG": "true", "N": "1e3", "my-var": "a=b",
                                  "HF_MODEL_ID": "./model"}
    args.env = ["no-equals-sign"]
    with pytest.raises(Exception, match="is not KEY=VALUE"):
        _environment(args)


@pytest.mark.slow
def test_serve_tgi_answers_as_the_llm_container_and_ctrl_c_leaves_nothing(sagetwin_home):
    from sagetwin.guide.tiny_llm import tiny_causal_lm

    serve = subprocess.Popen([sys.executable, "-m", "sagetwin.cli", "serve", "--tgi", "--hf-model-id",
                              str(tiny_causal_lm()), "--backend", "process"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                             preexec_fn=default_ctrl_c)
    try:
        read_until(serve.stdout, "url   ", timeout=180)
        curl = shlex.split(read_until(serve.stdout, "curl  ", timeout=30)[-1][len("curl  "):])
        pasted = subprocess.run(curl, capture_output=True, text=True, timeout=60)  # the line as a person pastes it
        [answer] = json.loads(pasted.stdout)
        assert answer["generated_text"].startswith("What is SageMaker?")  # TGI's SageMaker route: the full text
    except BaseException:
        serve.kill()
        serve.wait()
        raise
    err = signal_and_wait(serve, signal.SIGINT, timeout=60)
    assert serve.returncode == 0, err
    assert "deleted" in err.splitlines()[-1]
