"""Backends come from pluggy plugins: built-ins and third-party ones register the same way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sagetwin
from sagetwin.core import plugins
from sagetwin.core.backend import Availability
from sagetwin.core.progress import SilentReporter
from sagetwin.core.selection import choose_backend
from sagetwin.core.spec import TrainingResult
from tests.conftest import REPO, TRAIN_SCRIPTS, run_cli

EXAMPLE_PLUGIN = REPO / "examples" / "sagetwin-inline"
AUTOLOAD_ON = {"SAGETWIN_DISABLE_PLUGIN_AUTOLOAD": ""}  # this suite switches it off (conftest); these tests need it


class EchoEndpoint:
    def __init__(self, name: str) -> None:
        self.name = name
        self.deleted = False

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        data = json.loads(body)
        return json.dumps([{"label": "ECHO", "score": 1.0, "echo": data["inputs"]}]).encode(), "application/json"

    def delete(self) -> None:
        self.deleted = True


def make_backend(name: str, usable: bool = True, priority: int | None = None):
    class FakeBackend:
        description = f"fake {name}"
        auto_priority = priority

        @classmethod
        def availability(cls) -> Availability:
            return Availability(usable, "ready" if usable else f"{name} is switched off", "switch it on")

        def fit(self, spec, reporter):
            return TrainingResult(spec.job_name, name, f"fake://{spec.job_name}/model.tar.gz", {"accuracy": 1.0})

        def deploy(self, spec, reporter):
            return EchoEndpoint(spec.endpoint_name)

    FakeBackend.name = name
    return FakeBackend


class Recorder:
    """A plugin that registers one backend and observes every lifecycle hook."""

    def __init__(self, *backend_classes: type) -> None:
        self.backend_classes = backend_classes
        self.events: list[str] = []

    @sagetwin.hookimpl
    def sagetwin_register_backends(self, register):
        for cls in self.backend_classes:
            register(cls)

    @sagetwin.hookimpl
    def sagetwin_training_started(self, spec, backend):
        self.events.append(f"training_started:{backend}")

    @sagetwin.hookimpl
    def sagetwin_training_finished(self, spec, result, error):
        self.events.append(f"training_finished:{'ok' if result else type(error).__name__}")

    @sagetwin.hookimpl
    def sagetwin_endpoint_created(self, endpoint, backend):
        self.events.append(f"endpoint_created:{endpoint.name}")

    @sagetwin.hookimpl
    def sagetwin_endpoint_deleted(self, endpoint, backend):
        self.events.append(f"endpoint_deleted:{endpoint.name}")


@pytest.fixture
def registered(sagetwin_register_plugin):
    """The public fixture plugin authors use (sagetwin's pytest plugin), under this suite's old name."""
    return sagetwin_register_plugin


def test_builtin_process_backend_is_registered_through_the_hook():
    entries = plugins.backend_entries()
    assert entries["process"].plugin == "sagetwin.backends.process.plugin"
    assert entries["process"].distribution == "sagetwin (built-in)"
    impls = {plugins.get_plugin_manager().get_name(i.plugin)
             for i in plugins.get_plugin_manager().hook.sagetwin_register_backends.get_hookimpls()}
    assert "sagetwin.backends.process.plugin" in impls


def test_runtime_plugin_runs_the_workflow_and_sees_lifecycle_events(registered):
    recorder = registered(Recorder(make_backend("echo")), name="recorder")
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="echo", reporter=SilentReporter())
    result = job.fit({"train": "/nowhere"})
    assert result.backend == "echo" and result.metrics == {"accuracy": 1.0}
    with job.deploy() as predictor:
        assert predictor.predict({"inputs": "hi"}) == [{"label": "ECHO", "score": 1.0, "echo": "hi"}]
        name = predictor.endpoint_name
    assert predictor.endpoint.deleted
    assert recorder.events == ["training_started:echo", "training_finished:ok", f"endpoint_created:{name}",
                               f"endpoint_deleted:{name}"]


def test_training_failure_is_reported_to_plugins(registered):
    class Failing(make_backend("failing")):
        def fit(self, spec, reporter):
            raise sagetwin.TrainingError("it broke", "fix it", exit_code=3)

    recorder = registered(Recorder(Failing), name="recorder")
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="failing",
                                  reporter=SilentReporter())
    with pytest.raises(sagetwin.TrainingError):
        job.fit()
    assert recorder.events == ["training_started:failing", "training_finished:TrainingError"]


def test_the_plan_confirmed_names_the_job_that_runs(registered, sagetwin_home):
    """A backend with a launch plan (the Plans capability) sees the same job in its plan and its fit."""
    from sagetwin.backends.sagemaker.pricing import CostLine
    from sagetwin.core.backend import Plans
    from sagetwin.guide.workflow import WorkflowOptions, run_workflow

    seen: list[str] = []

    class Paid(make_backend("paid")):
        def launch_plan(self, training, endpoint_instance_type=None):
            seen.append(f"plan:{training.job_name}")
            return [CostLine("training", "ml.m5.large", 1, 0.115, 1.0)]

        def fit(self, spec, reporter):
            seen.append(f"fit:{spec.job_name}")
            return super().fit(spec, reporter)

    assert isinstance(Paid(), Plans) and not isinstance(make_backend("free")(), Plans)
    registered(Recorder(Paid), name="paid")
    asked: list[list[str]] = []
    run_workflow(WorkflowOptions(backend="paid", model="tiny", train_size=16, test_size=8), SilentReporter(),
                 confirm=lambda plan: asked.append(plan) or True)
    assert asked == [["training: 1 x ml.m5.large at $0.115/h, at most 1.0 h (max_run) -> worst case $0.12"]]
    assert len(seen) == 2 and seen[0].removeprefix("plan:") == seen[1].removeprefix("fit:"), seen


def test_a_registered_class_that_is_not_a_backend_is_named(registered):
    class NoFit:
        name = "nofit"
        description = "lacks fit"

    registered(Recorder(NoFit), name="broken")
    with pytest.raises(sagetwin.ConfigurationError, match="not a backend class: it lacks availability, fit, deploy"):
        plugins.backend_entries()


def test_two_plugins_claiming_one_name_is_an_error(registered):
    registered(Recorder(make_backend("twin")), name="first")
    registered(Recorder(make_backend("twin")), name="second")
    with pytest.raises(sagetwin.ConfigurationError, match="registered twice"):
        plugins.backend_entries()


def test_unusable_backend_says_why_and_how_to_fix(registered):
    registered(Recorder(make_backend("offline", usable=False)), name="recorder")
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="offline",
                                  reporter=SilentReporter())
    with pytest.raises(sagetwin.BackendUnavailableError, match="offline is switched off") as info:
        job.fit()
    assert info.value.fix == "switch it on"


def test_auto_prefers_the_highest_priority_usable_backend(registered, monkeypatch):
    monkeypatch.delenv("SAGETWIN_BACKEND", raising=False)
    registered(Recorder(make_backend("docker-ish", usable=False, priority=1000),
                        make_backend("fallback", priority=500), make_backend("paid", priority=None)),
               name="recorder")
    name, reason = choose_backend(None)
    assert name == "fallback"
    assert "docker-ish: docker-ish is switched off" in reason
    monkeypatch.setenv("SAGETWIN_BACKEND", "paid")
    assert choose_backend(None) == ("paid", "from $SAGETWIN_BACKEND")
    assert choose_backend("echo")[0] == "echo"  # the argument wins over the environment


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Path:
    """``pip install`` the example plugin's folder into a private target directory."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE_PLUGIN)], check=True, capture_output=True)
    return target


def test_example_plugin_is_discovered_through_its_entry_point(installed_example):
    env = {"PYTHONPATH": os.pathsep.join([str(installed_example), str(REPO)]), **AUTOLOAD_ON}
    result = run_cli("backends", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["inline"]["distribution"] == "sagetwin-inline 0.1.0"
    assert rows["inline"]["usable"] is True
    assert rows["process"]["distribution"] == "sagetwin (built-in)"

    hidden = run_cli("backends", "--json", env={**env, "SAGETWIN_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "inline" not in {row["name"] for row in json.loads(hidden.stdout)}


def test_plugins_add_commands_and_help_lists_them_all(installed_example, tmp_path):
    env = {"PYTHONPATH": os.pathsep.join([str(installed_example), str(REPO)]), "SAGETWIN_HOME": str(tmp_path),
           **AUTOLOAD_ON}
    helped = run_cli("--help", env=env)
    assert helped.returncode == 0, helped.stderr
    for command in ("run", "backends", "doctor", "check", "image", "endpoints", "inline-runs"):
        assert command in helped.stdout, command
    listed = run_cli("inline-runs", env=env)
    assert listed.returncode == 0 and "no inline runs under" in listed.stdout, listed.stderr
    without = run_cli("--help", env={**env, "SAGETWIN_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "inline-runs" not in without.stdout and "check" in without.stdout


@pytest.mark.slow
def test_example_plugin_runs_the_standard_workflow(installed_example, no_leftover_processes):
    env = {"PYTHONPATH": os.pathsep.join([str(installed_example), str(REPO)]), **AUTOLOAD_ON}
    result = run_cli("run", "--backend", "inline", "--model", "tiny", "--max-steps", "5", "--json",
                     "--train-size", "64", "--test-size", "32", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout)
    assert data["backend"] == "inline"
    assert data["prediction"][0]["label"] in {"NEGATIVE", "POSITIVE"}
    assert set(data["training"]["metrics"]) >= {"accuracy", "f1"}
