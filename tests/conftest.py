"""Shared fixtures: an isolated SAGETWIN_HOME, a tiny model, prepared sample data, leak checks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Plugins installed in this environment stay out of the project's own tests (as llm and datasette
# do); the tests of entry-point loading switch it back on for their subprocess.
os.environ["SAGETWIN_DISABLE_PLUGIN_AUTOLOAD"] = "1"

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


@pytest.fixture
def no_leftover_processes():
    """Fail the test if it leaves child processes (servers, training runs) behind. The warm
    model-server parent lives as long as the program that started it: it is closed here, as
    the end of a program closes it, and must take its forked servers with it."""
    yield
    from sagetwin.emulation.warm_serving import warm_servers

    warm_servers.close()
    me = psutil.Process()
    children = [p for p in me.children(recursive=True) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not children, f"processes left running: {[(p.pid, p.cmdline()) for p in children]}"


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


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600):
    """Run the real ``sagetwin`` CLI in a subprocess."""
    import subprocess

    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "sagetwin.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
