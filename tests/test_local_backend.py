"""The local backend end to end: SDK local mode in Docker with the images sagetwin builds.

These tests need a Docker engine. Elsewhere they skip with the reason; with
SAGETWIN_REQUIRE_DOCKER=1 (CI) a missing engine fails them.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

import sagetwin
from sagetwin.core.progress import SilentReporter
from sagetwin.core.versions import resolve_stack
from tests.conftest import TRAIN_SCRIPTS, cannot_run_here, default_ctrl_c, run_cli
from tests.test_parity import GUIDE, Said, guide_job

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def docker_engine():
    require_docker()


def require_docker() -> None:
    """Skip (fail under SAGETWIN_REQUIRE_DOCKER=1) unless the local backend can run here."""
    from sagetwin.backends.local.backend import LocalBackend

    availability = LocalBackend.availability()
    if not availability.usable:
        cannot_run_here(f"needs a Docker engine: {availability.reason} ({availability.fix})")


def all_containers() -> set[str]:
    return set(subprocess.run(["docker", "ps", "-aq", "--no-trunc"], capture_output=True, text=True,
                              check=True, timeout=60).stdout.split())


def sdk_work_folders() -> set[Path]:
    from sagetwin.backends.local.backend import LocalBackend

    work_dir = LocalBackend().work_dir
    return set(work_dir.glob("tmp*")) | set(work_dir.glob("sdk/*"))


@pytest.fixture
def no_leftover_containers():
    """`docker ps -a` shows nothing of ours afterwards, whatever happened in the test, and the
    folders SDK local mode made for the test's runs are gone."""
    before, folders_before = all_containers(), sdk_work_folders()
    yield
    left = all_containers() - before
    assert not left, f"containers left behind: {left}"
    folders_left = sdk_work_folders() - folders_before
    assert not folders_left, f"SDK work folders left behind: {sorted(map(str, folders_left))}"
    networks = subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}"], capture_output=True,
                              text=True).stdout.split()
    assert "sagemaker-local" not in networks


def user_workflow(backend: str, channels: dict[str, str], hyperparameters: dict) -> dict:
    """A person's own code: identical for every backend but for the name."""
    job = sagetwin.HuggingFaceJob(entry_point="train.py", source_dir=str(TRAIN_SCRIPTS),
                                  hyperparameters=hyperparameters, backend=backend, reporter=SilentReporter())
    training = job.fit(channels)
    with job.deploy() as predictor:
        prediction = predictor.predict({"inputs": ["I loved every minute of it.", "A dull, lifeless mess."]})
    return {"training": training, "prediction": prediction}


def test_same_user_code_on_process_and_local(sample_channels, tiny_hyperparameters, no_leftover_containers,
                                             no_leftover_processes):
    offline = user_workflow("process", sample_channels, tiny_hyperparameters)
    docker = user_workflow("local", sample_channels, tiny_hyperparameters)
    assert docker["training"].backend == "local"
    assert docker["training"].model_data.startswith("file://") and docker["training"].model_data.endswith(
        "model.tar.gz")
    assert set(docker["training"].metrics) >= {"accuracy", "f1", "precision", "recall"}
    for result in (offline, docker):
        assert [set(item) for item in result["prediction"]] == [{"label", "score"}] * 2
        assert {item["label"] for item in result["prediction"]} <= {"NEGATIVE", "POSITIVE"}


def test_cli_run_local_json(no_leftover_containers):
    result = run_cli("run", "--backend", "local", "--model", "tiny", "--max-steps", "10", "--json",
                     "--train-size", "64", "--test-size", "16")
    assert result.returncode == 0, result.stderr[-4000:]
    data = json.loads(result.stdout)
    assert data["backend"] == "local"
    assert set(data["training"]["metrics"]) >= {"accuracy", "f1"}
    assert data["training"]["model_data"].endswith("model.tar.gz")
    assert data["prediction"][0]["label"] in {"NEGATIVE", "POSITIVE"}
    assert data["endpoint"]["deleted"] is True
    assert "(parity: exact)" in result.stderr  # the run says how the local image compares with the DLC


def test_training_failure_reports_exit_code_and_log(tmp_path: Path, sample_channels, no_leftover_containers):
    (tmp_path / "train.py").write_text("print('loading the widget')\nraise SystemExit('no widget in this container')\n")
    job = sagetwin.HuggingFaceJob("train.py", source_dir=tmp_path, backend="local", reporter=SilentReporter())
    with pytest.raises(sagetwin.TrainingError) as info:
        job.fit({"train": sample_channels["train"]})
    assert info.value.exit_code == 1
    assert "no widget in this container" in info.value.log_tail


def test_busy_port_8080_and_a_dying_server(trained_tiny, tmp_path: Path, no_leftover_containers):
    from sagetwin.backends.local.readiness import MODEL_LOAD_FAILED

    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="local", reporter=SilentReporter())
    with socket.socket() as busy:
        try:
            busy.bind(("127.0.0.1", 8080))
            busy.listen()
        except OSError:
            pass  # something else already holds 8080: the point stands
        with job.deploy(model_data=trained_tiny.model_data) as predictor:
            assert predictor.endpoint.port != 8080
            assert predictor.predict({"inputs": "fine"})[0]["label"] in {"NEGATIVE", "POSITIVE"}

    import tarfile

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"],
                                                    "model_type": "bert"}))  # no weights: cannot load
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(broken / "config.json", arcname="config.json")
    with pytest.raises(sagetwin.EndpointError, match="the model failed to load") as info:
        job.deploy(model_data=str(archive))
    # the line readiness took as the failed load is in the log shown ("worker" is in MMS's start-up lines too)
    assert any(marker in info.value.details for marker in MODEL_LOAD_FAILED), info.value.details


def test_a_port_taken_before_deploy_is_refused_before_the_model_is_staged(trained_tiny, monkeypatch,
                                                                          no_leftover_containers):
    """docs/reliability.md row 37, through ``LocalBackend.deploy``: the front listens from the start
    of deploy, so a port asked for and already taken is a ConfigurationError naming it before the
    model is staged or a container is started (were the front opened later, both would have run)."""
    from sagetwin.backends.local.backend import LocalBackend

    reached: list[str] = []

    def recorded(step: str):
        real = getattr(LocalBackend, step)

        def record(self, *args, **kwargs):
            reached.append(step)
            return real(self, *args, **kwargs)
        return record

    for step in ("stage", "_start_serving"):
        monkeypatch.setattr(LocalBackend, step, recorded(step))
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="local", reporter=SilentReporter())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(sagetwin.ConfigurationError, match=f"port {port} on 127.0.0.1 is already in use"):
            job.deploy(model_data=trained_tiny.model_data, port=port)
    assert reached == []


def test_a_serving_container_that_exits_fails_fast_with_its_exit_code(trained_tiny, no_leftover_containers):
    from sagetwin.backends.local import images

    # the training image has no `serve`: its container exits at once, as a wrong image_uri would
    training_image = images.recipe("training").tag
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="local", reporter=SilentReporter(),
                                  backend_options={"inference_image_uri": training_image})
    with pytest.raises(sagetwin.EndpointError, match="serving container exited before the model was loaded") as info:
        job.deploy(model_data=trained_tiny.model_data)
    assert "container exit code" in str(info.value)


def test_two_containers_train_data_parallel(sample_channels, tiny_hyperparameters, no_leftover_containers,
                                            capfd):
    """instance_count=2 with torch_distributed: the PyTorch toolkit in each container starts torchrun,
    and the Trainer on algo-1 and algo-2 trains one model over gloo."""
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="local", instance_count=2,
                                  distribution={"torch_distributed": {"enabled": True}},
                                  hyperparameters=tiny_hyperparameters, reporter=SilentReporter())
    result = job.fit(sample_channels)
    log = capfd.readouterr().out.splitlines()
    launched = sorted(line.split(" | ")[0] for line in log if "torchrun --nnodes 2 --nproc_per_node 1" in line)
    assert launched == ["algo-1", "algo-2"], log[-60:]
    assert result.metrics["world_size"] == 2
    assert set(result.metrics) >= {"accuracy", "f1"}


def start_until_serving(command: list[str], before: set[str]) -> tuple[subprocess.Popen, str]:
    """Start a sagetwin process (its own session, as a terminal would) and wait for its serving container."""
    import sys
    import time

    process = subprocess.Popen([sys.executable, *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, preexec_fn=default_ctrl_c)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        serving = [c for c in all_containers() - before if "inference" in subprocess.run(
            ["docker", "inspect", "--format", "{{.Config.Image}}", c], capture_output=True, text=True).stdout]
        if serving:
            return process, serving[0]
        time.sleep(0.5)
    process.kill()
    raise AssertionError(f"no serving container appeared; stderr: {process.communicate()[1][-3000:]}")


CLI_RUN = ["-m", "sagetwin.cli", "run", "--backend", "local", "--model", "tiny", "--max-steps", "4",
           "--train-size", "64", "--test-size", "16"]


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupted_run_removes_its_containers(how: str, no_leftover_containers):
    """Ctrl-C (SIGINT to the terminal's process group) or `kill` (SIGTERM to sagetwin) while the
    endpoint starts: the run stops with 130 / 143 and `docker ps -a` shows nothing of it."""
    import signal

    process, _ = start_until_serving(CLI_RUN, all_containers())
    if how == "ctrl-c":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == (130 if how == "ctrl-c" else 143), stderr[-3000:]
    assert "everything this run started has been stopped" in stderr


KILLED_DEPLOY = """
import sys, time, sagetwin
job = sagetwin.HuggingFaceJob("train.py", source_dir=sys.argv[1], backend="local")
job.deploy(model_data=sys.argv[2])
time.sleep(600)
"""


def test_containers_of_a_killed_run_are_found_and_removed(trained_tiny, no_leftover_containers):
    """SIGKILL leaves no chance to clean up: doctor names the container, the next local run removes it."""
    import signal

    from sagetwin.backends.local.containers import orphaned_containers, reap_orphans
    from sagetwin.core.progress import StreamReporter

    assert orphaned_containers() == []
    process, container = start_until_serving(["-c", KILLED_DEPLOY, str(TRAIN_SCRIPTS), trained_tiny.model_data],
                                             all_containers())
    assert orphaned_containers() == []  # its owner is alive: not an orphan
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert orphaned_containers() == [container]
    doctor = run_cli("doctor")
    assert "[FAIL] local: no containers left by killed runs: 1 left" in doctor.stdout
    said = io.StringIO()
    reap_orphans(StreamReporter(said))
    assert orphaned_containers() == []
    assert "removed 1 container(s) left by a sagetwin run that was killed" in said.getvalue()
    from sagetwin.backends.local.backend import LocalBackend
    from sagetwin.backends.local.sdk_folders import reap_orphaned_folders

    assert reap_orphaned_folders(LocalBackend().work_dir, StreamReporter(said)) == 1  # the killed deploy's folder
    assert "removed 1 work folder(s) left by a sagetwin run that was killed" in said.getvalue()


def test_guides_arguments_run_fit_deploy_predict_on_local_at_exact_parity(sample_channels, tiny_model,
                                                                          no_leftover_containers):
    from sagetwin.backends.local import images

    stack = resolve_stack(**{k.split("_")[0]: v for k, v in GUIDE.items()})
    for each in (stack, resolve_stack()):  # the guide's stack and the default one: the DLC's versions inside
        for scope in ("training", "inference"):
            tag = images.recipe(scope, each).tag
            inside = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python3", tag,
                                     "-c", "import sys, torch, transformers; print('%d.%d' % sys.version_info[:2], "
                                     "torch.__version__.split('+')[0], transformers.__version__)"],
                                    capture_output=True, text=True, timeout=300)
            assert inside.returncode == 0, inside.stderr[-2000:]
            assert inside.stdout.split() == [each.python, each.pytorch, each.transformers], (tag, inside.stdout)
    said = Said()
    job = guide_job("local", tiny_model, said, **GUIDE)
    result = job.fit(sample_channels)
    assert result.details["parity"] == [] and set(result.metrics) >= {"accuracy", "f1"}
    with job.deploy() as predictor:
        answer = predictor.predict({"inputs": "I loved every minute of it."})
    assert [set(item) for item in answer] == [{"label", "score"}]
    assert any("(parity: exact)" in line for line in said.lines), said.lines
    assert any("stack: transformers 4.26.0, pytorch 1.13.1, py39" in line for line in said.lines)


def listening_addresses() -> set[str]:
    """Every listening TCP address on this machine (``ss``), e.g. ``127.0.0.1:8080``, ``[::]:8080``."""
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3] for line in listening.splitlines()}


def test_a_local_endpoint_listens_on_loopback_only_and_leaves_the_archive_folder_alone(
        trained_tiny, tmp_path, no_leftover_containers):
    import shutil

    archive = tmp_path / "user-folder" / "model.tar.gz"
    archive.parent.mkdir()
    shutil.copy(trained_tiny.model_data.removeprefix("file://"), archive)
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="local", reporter=SilentReporter())
    before = listening_addresses()
    with job.deploy(model_data=str(archive)) as predictor:
        opened = listening_addresses() - before  # the front's, and the container's as Docker publishes it
        ports = {predictor.endpoint.port, predictor.endpoint.front.upstream.port}
        assert {address.rsplit(":", 1)[1] for address in opened} >= {str(port) for port in ports}, (opened, ports)
        assert all(address.startswith("127.0.0.1:") for address in opened), opened
        assert predictor.predict({"inputs": "great"})[0]["label"] in {"NEGATIVE", "POSITIVE"}
    assert sorted(p.name for p in archive.parent.iterdir()) == ["model.tar.gz"]  # nothing unpacked beside it


def test_the_guides_sdk_code_runs_through_the_aws_twin_on_local(sample_channels, no_leftover_containers):
    from tests.test_aws_twin import check_guide_result, run_guide

    check_guide_result(run_guide("local", sample_channels))
