"""Shared fixtures: an isolated SAGETWIN_HOME, a tiny model, prepared sample data, leak checks."""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Plugins installed in this environment stay out of the project's own tests (as llm and datasette
# do); the tests of entry-point loading switch it back on for their subprocess.
os.environ["SAGETWIN_DISABLE_PLUGIN_AUTOLOAD"] = "1"

# Every process this test session starts inherits this marker, even one a CLI subprocess started
# and left behind (re-parented to init): the leak check finds those by it, not by parentage.
SESSION_MARKER = ("SAGETWIN_TEST_SESSION", uuid.uuid4().hex)
os.environ[SESSION_MARKER[0]] = SESSION_MARKER[1]

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPTS = REPO / "train_scripts"


@pytest.fixture(scope="session", autouse=True)
def sagetwin_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("sagetwin-home")
    os.environ["SAGETWIN_HOME"] = str(home)
    return home


@pytest.fixture(autouse=True)
def fresh_plugin_manager():
    from sagetwin.core.plugins import reset_plugin_manager

    reset_plugin_manager()
    yield
    reset_plugin_manager()


def started_by_this_session(since: float) -> list[psutil.Process]:
    """Live processes started since ``since`` that carry this session's marker, wherever they
    were re-parented to."""
    found = []
    for proc in psutil.process_iter(["create_time"]):
        if proc.pid == os.getpid() or proc.info["create_time"] < since:
            continue
        try:
            if (proc.environ().get(SESSION_MARKER[0]) == SESSION_MARKER[1]
                    and proc.status() != psutil.STATUS_ZOMBIE):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture(scope="module")
def twin_since() -> float:
    """When a module's twin started (its ``twin`` fixture asks for this first): a twin's leftovers
    are counted from here, as a job runs in a runner the twin started ahead of it, before the test."""
    return time.time() - 0.1


@pytest.fixture
def no_leftover_processes():
    """Fail the test if it leaves processes (servers, training runs) behind: its own children, and
    any process started during the test by a subprocess it ran (a CLI's server re-parented to
    init once the CLI exited). The warm model-server parent lives as long as the program that
    started it: it is closed here, as the end of a program closes it, and must take its forked
    servers with it."""
    since = time.time() - 0.1
    yield
    from sagetwin.emulation.warm_serving import warm_servers

    warm_servers.close()
    deadline = time.monotonic() + 5.0  # a process stopping its group at exit may take a moment
    while (left := started_by_this_session(since)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes left running: {[(p.pid, p.cmdline()) for p in left]}"


@pytest.fixture(scope="session")
def tiny_model(sagetwin_home: Path):
    from sagetwin.guide.data import resolve_model

    return resolve_model("tiny")


@pytest.fixture(scope="session")
def sample_channels(tiny_model) -> dict[str, str]:
    from sagetwin.guide.data import prepare_datasets

    channels = prepare_datasets("sample", tiny_model.tokenizer_source, train_size=64, test_size=32)
    return {**channels, **tiny_model.channels()}


@pytest.fixture(scope="session")
def tiny_hyperparameters(tiny_model) -> dict:
    return {"epochs": 1, "max_steps": 4, "train_batch_size": 16, "eval_batch_size": 32,
            "warmup_steps": 0, "model_name": tiny_model.hyperparameter, "logging_steps": 2}


@pytest.fixture(scope="session")
def trained_tiny(sample_channels, tiny_hyperparameters, tmp_path_factory):
    """One real tiny training run through the process backend, shared by serving tests."""
    import sagetwin
    from sagetwin.core.progress import SilentReporter

    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, hyperparameters=tiny_hyperparameters,
                                  backend="process", reporter=SilentReporter())
    return job.fit(sample_channels)


def default_ctrl_c() -> None:
    """``preexec_fn`` for a CLI a test stops with SIGINT: the disposition a terminal gives it, not
    the one this test run inherited (`trap "" INT`, `nohup ... &`, a CI runner that ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cannot_run_here(reason: str) -> None:
    """Skip with ``reason``; under ``SAGETWIN_REQUIRE_DOCKER=1`` (CI, which installs what these tests
    need) fail instead: a test CI means to run must not pass by skipping."""
    if os.environ.get("SAGETWIN_REQUIRE_DOCKER") == "1":
        pytest.fail(f"SAGETWIN_REQUIRE_DOCKER=1 but this test cannot run here: {reason}", pytrace=False)
    pytest.skip(reason)


def read_until(stream, wanted: str, timeout: float) -> list[str]:
    """The lines of a subprocess's text ``stream`` up to and including the first that contains
    ``wanted``. A program that goes silent or ends first fails the test after ``timeout`` s with
    what it printed: the stream is read on a thread, so a silent one never blocks the test."""
    done: queue.Queue = queue.Queue()
    seen: list[str] = []

    def read() -> None:
        for line in stream:
            seen.append(line)
            if wanted in line:
                done.put(True)
                return
        done.put(False)  # the output ended

    threading.Thread(target=read, daemon=True).start()
    try:
        found = done.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"no {wanted!r} line within {timeout:.0f} s; the program said:\n{''.join(seen)[-3000:]}")
    if not found:
        pytest.fail(f"the output ended without a {wanted!r} line; the program said:\n{''.join(seen)[-3000:]}")
    return list(seen)


def holds_for(check: Callable[[], bool], seconds: float = 1.5, every: float = 0.1) -> bool:
    """``check()`` is true at every sample over ``seconds`` (one instant proves no "keeps running")."""
    deadline = time.monotonic() + seconds
    while True:
        if not check():
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(every)


def signal_and_wait(proc, sig: int, timeout: float) -> str:
    """Send ``sig`` to a running CLI and return its stderr once it exits (killed if it will not)."""
    try:
        proc.send_signal(sig)
        return proc.communicate(timeout=timeout)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600):
    """Run the real ``sagetwin`` CLI in a subprocess."""
    import subprocess

    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "sagetwin.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
