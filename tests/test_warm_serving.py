"""Warm serving on `process`: a redeploy is forked from a parent that has already imported torch,
transformers and the toolkit, and still reads the model and ``code/inference.py`` afresh;
nothing of it outlives the program."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import sagetwin
from sagetwin.core.progress import SilentReporter
from sagetwin.emulation.warm_serving import ForkedServer
from tests.conftest import TRAIN_SCRIPTS
from tests.test_serving import archive_with_code

pytestmark = pytest.mark.slow

CODE = '''
def predict_fn(data, model):
    return [{{"label": "{version}", "score": 1.0}}]
'''


def warm_processes() -> set[int]:
    """The warm parents and the servers forked from them (a fork keeps its parent's command line)."""
    found = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                command = file.read()
            with open(f"/proc/{entry}/stat") as file:
                state = file.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if b"sagetwin.emulation.fork_server" in command and state != "Z":
            found.add(int(entry))
    return found


def wait_until_gone(pids: set[int], timeout: float = 15.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while pids & warm_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids & warm_processes()


def test_a_redeploy_is_forked_warm_and_reads_the_edited_inference_py(trained_tiny, tmp_path, no_leftover_processes):
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="process", reporter=SilentReporter())
    answers = []
    for version in ("first", "edited"):
        folder = tmp_path / version
        folder.mkdir()
        with job.deploy(model_data=archive_with_code(trained_tiny, folder, CODE.format(version=version))) as predictor:
            assert isinstance(predictor.endpoint.proc, ForkedServer)
            answers.append(predictor.predict({"inputs": "a film"})[0]["label"])
    assert answers == ["first", "edited"]


def test_the_warm_parent_and_its_servers_end_with_the_program(trained_tiny, tmp_path):
    """Whether the program exits leaving its endpoint up, or is killed with SIGKILL."""
    program = textwrap.dedent(f'''
        import sys, time
        import sagetwin
        from sagetwin.core.progress import SilentReporter
        job = sagetwin.HuggingFaceJob("train.py", source_dir={str(TRAIN_SCRIPTS)!r}, backend="process",
                                      reporter=SilentReporter())
        predictor = job.deploy(model_data={trained_tiny.model_data!r})
        print(predictor.predict({{"inputs": "a film"}})[0]["label"], flush=True)
        if sys.argv[1] == "wait":
            time.sleep(600)
    ''')
    for how in ("exit", "sigkill"):
        before = warm_processes()
        child = subprocess.Popen([sys.executable, "-c", program, "wait" if how == "sigkill" else "exit"],
                                 stdout=subprocess.PIPE, text=True, env={**os.environ, "SAGETWIN_WARM_SERVING": "1"})
        assert child.stdout is not None
        assert child.stdout.readline().strip(), f"{how}: the program printed no answer"
        started = warm_processes() - before
        assert len(started) >= 2, f"{how}: no warm parent and forked server were seen ({started})"
        if how == "sigkill":
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=120)
        assert not wait_until_gone(started), f"{how}: left running: {wait_until_gone(started, 0)}"


def test_a_changed_environment_gets_a_new_warm_parent_and_live_endpoints_keep_serving(
        trained_tiny, monkeypatch, no_leftover_processes):
    """Variables read when packages are imported cannot be handed to a parent that has already
    imported them: a deploy with a different environment gets a new parent, while the endpoints
    forked from the old one keep serving; the old parent ends once it serves nothing. A variable
    the toolkit reads at load time (HF_TASK) does not need a new parent."""
    import psutil

    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="process", reporter=SilentReporter())

    def parent_of(predictor) -> int:
        return psutil.Process(predictor.endpoint.proc.pid).ppid()

    monkeypatch.setenv("SAGETWIN_TEST_IMPORT_TIME", "a")
    with job.deploy(model_data=trained_tiny.model_data) as first:
        with job.deploy(model_data=trained_tiny.model_data, env={"HF_TASK": "text-classification"}) as same:
            assert parent_of(same) == parent_of(first)
        monkeypatch.setenv("SAGETWIN_TEST_IMPORT_TIME", "b")
        with job.deploy(model_data=trained_tiny.model_data) as second:
            assert parent_of(second) != parent_of(first)
            assert first.predict({"inputs": "a film"})[0]["label"], "the first endpoint stopped serving"
            assert second.predict({"inputs": "a film"})[0]["label"]
        old_parent = parent_of(first)
    with job.deploy(model_data=trained_tiny.model_data) as third:  # "b" again: the idle "a" parent is retired
        assert third.predict({"inputs": "a film"})[0]["label"]
        assert not wait_until_gone({old_parent}), "the idle warm parent is still running"


def test_a_requested_port_is_the_port_served(trained_tiny, no_leftover_processes):
    from sagetwin.emulation.processes import free_port

    port = free_port()
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="process", reporter=SilentReporter())
    with job.deploy(model_data=trained_tiny.model_data, port=port) as predictor:
        assert predictor.endpoint.port == port
        assert isinstance(predictor.endpoint.proc, ForkedServer)
        assert predictor.predict({"inputs": "a film"})[0]["label"]
