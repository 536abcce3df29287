"""The `sagemaker` backend against the AWS twin, which runs jobs and endpoints for real (moto
alone completes everything at once and answers predictions from a canned queue): the person's
workflow answers as on `process`; a job that fails with its reason and log, an endpoint that
fails to start and is removed, and Ctrl-C while a job runs, which asks whether to stop the job and
does what the person answers. Its own module: one twin runs per process."""

from __future__ import annotations

import _thread
import threading
import time
from pathlib import Path

import pytest

import sagetwin
from tests.conftest import holds_for
from tests.test_aws_twin import VERSIONS, leftovers


@pytest.fixture(scope="module")
def twin(twin_since, sagetwin_home):
    import sagetwin.aws

    with sagetwin.aws.start(backend="process", persist=False) as running:
        yield running


class Answering:
    """A reporter a person answers: records the steps and the questions, and answers ``answer``."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.steps: list[str] = []
        self.questions: list[str] = []

    def step(self, message: str) -> None:
        self.steps.append(message)

    def log(self, line: str) -> None:
        pass

    def ask(self, question: str, *, default: bool) -> bool:
        self.questions.append(question)
        return self.answer


def job_in(folder: Path, script: str, reporter: object, twin) -> sagetwin.HuggingFaceJob:
    (folder / "train.py").write_text(script)
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "rows.txt").write_text("one\n")
    return sagetwin.HuggingFaceJob("train.py", source_dir=folder, backend="sagemaker", role=twin.role_arn,
                                   reporter=reporter, **VERSIONS)


def not_an_archive(twin, folder: Path) -> str:
    """An S3 URI of a `model.tar.gz` that is not one (a bucket of the test's own)."""
    junk = folder / "model.tar.gz"
    junk.write_bytes(b"this is not a tar.gz archive")
    buckets = [b["Name"] for b in twin.clients.s3.list_buckets()["Buckets"]]
    if "junk-models" not in buckets:
        twin.clients.s3.create_bucket(Bucket="junk-models")
    twin.clients.s3.upload_file(str(junk), "junk-models", f"{folder.name}/model.tar.gz")
    return f"s3://junk-models/{folder.name}/model.tar.gz"


def test_a_job_that_fails_names_its_reason_and_shows_its_log(twin, tmp_path):
    job = job_in(tmp_path, "print('reading the data', flush=True)\nraise ValueError('learning rate must be "
                           "positive, got -1')\n", Answering(), twin)
    with pytest.raises(sagetwin.TrainingError) as info:
        job.fit({"train": str(tmp_path / "data")})
    assert "ended Failed: AlgorithmError: ExecuteUserScriptError" in info.value.problem
    assert "ValueError: learning rate must be positive, got -1" in info.value.problem
    assert "reading the data" in info.value.log_tail  # from the job's CloudWatch log stream


def test_an_endpoint_that_fails_to_start_is_removed_and_says_why(twin, tmp_path):
    job = job_in(tmp_path, "print('unused')\n", Answering(), twin)
    with pytest.raises(sagetwin.EndpointError) as info:
        job.deploy(model_data=not_an_archive(twin, tmp_path))
    assert "did not reach InService" in info.value.problem and "valid tar.gz archive" in info.value.problem
    assert "sagetwin endpoints --delete" not in str(info.value)  # it was deleted: nothing to remove by hand
    assert twin.clients.sagemaker.list_endpoints()["Endpoints"] == []


def test_a_failed_endpoint_that_cannot_be_deleted_either_keeps_its_reason_and_names_the_cleanup(twin, tmp_path,
                                                                                                 monkeypatch):
    from sagetwin.backends.sagemaker.endpoints import SageMakerEndpoint

    def network_down(self) -> None:
        raise ConnectionError("the network went down")

    monkeypatch.setattr(SageMakerEndpoint, "delete", network_down)
    job = job_in(tmp_path, "print('unused')\n", Answering(), twin)
    with pytest.raises(sagetwin.EndpointError) as info:
        job.deploy(model_data=not_an_archive(twin, tmp_path))
    monkeypatch.undo()
    name = info.value.problem.split()[1]
    assert "valid tar.gz archive" in info.value.problem  # the deploy's own error stays the one raised
    assert any(f"`sagetwin endpoints --delete {name}`" in note and "$0.736/h" in note
               for note in info.value.__notes__), info.value.__notes__
    assert name in [e["EndpointName"] for e in twin.clients.sagemaker.list_endpoints()["Endpoints"]]
    twin.clients.sagemaker.delete_endpoint(EndpointName=name)  # what the note says to do, done here


def interrupt_once_running(twin) -> threading.Thread:
    """Ctrl-C (KeyboardInterrupt in the main thread) once the twin's job process has started."""

    def wait_then_interrupt() -> None:
        deadline = time.monotonic() + 120
        while not any(job.proc for job in twin.jobs.jobs.values() if job.status == "InProgress") \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        _thread.interrupt_main()

    thread = threading.Thread(target=wait_then_interrupt, daemon=True)
    thread.start()
    return thread


def status_after(twin, name: str, wanted: str, within: float = 60) -> str:
    deadline = time.monotonic() + within
    status = ""
    while time.monotonic() < deadline:
        status = twin.clients.sagemaker.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
        if status == wanted:
            break
        time.sleep(0.5)
    return status


@pytest.mark.parametrize("stop", [True, False], ids=["stop it", "keep it running"])
def test_ctrl_c_while_a_job_runs_asks_and_does_what_the_person_answers(twin, twin_since, tmp_path, stop):
    reporter = Answering(stop)
    job = job_in(tmp_path, "import time\nprint('started', flush=True)\ntime.sleep(600)\n", reporter, twin)
    interrupt_once_running(twin)
    with pytest.raises(KeyboardInterrupt):
        job.fit({"train": str(tmp_path / "data")})
    name = next(n for n, j in twin.jobs.jobs.items() if j.status in ("InProgress", "Stopping", "Stopped")
                and n.startswith("huggingface-") and f"training job {n}" in " ".join(reporter.questions))
    assert reporter.questions == [f"\nStop training job {name}? It keeps running (and billing) otherwise."]
    if stop:
        assert f"sagemaker: stop requested for training job {name}" in reporter.steps
        assert status_after(twin, name, "Stopped") == "Stopped"
    else:
        assert f"sagemaker: training job {name} left running" in reporter.steps
        job_process = twin.jobs.jobs[name].proc
        assert holds_for(lambda: job_process.poll() is None and twin.clients.sagemaker.describe_training_job(
            TrainingJobName=name)["TrainingJobStatus"] == "InProgress", seconds=2.0), "the job did not keep running"
        twin.clients.sagemaker.stop_training_job(TrainingJobName=name)
        assert status_after(twin, name, "Stopped") == "Stopped"
    assert not leftovers(twin_since, twin)


@pytest.mark.slow
def test_same_workflow_on_process_and_sagemaker(twin, twin_since, sample_channels, tiny_hyperparameters, monkeypatch):
    """The same user code on `process` and on `sagemaker` against the twin: the twin trains the job
    and its endpoint serves the model that job trained (moto alone answers InvokeEndpoint with a
    canned result), so both answers come from a real model of the same data and hyperparameters."""
    from tests.test_sagemaker_backend import user_workflow

    monkeypatch.setenv("SAGETWIN_ROLE", twin.role_arn)
    offline = user_workflow("process", sample_channels, tiny_hyperparameters)
    cloud = user_workflow("sagemaker", sample_channels, tiny_hyperparameters)
    assert cloud["training"].backend == "sagemaker" and cloud["training"].model_data.startswith("s3://")
    assert [set(p) for p in cloud["prediction"]] == [set(p) for p in offline["prediction"]] == [{"label", "score"}]
    assert [p["label"] for p in cloud["prediction"]] == [p["label"] for p in offline["prediction"]]
    # one seed, one stack, one CPU: the two trainings give the same model (seen: equal to the last digit)
    assert [p["score"] for p in cloud["prediction"]] == pytest.approx([p["score"] for p in offline["prediction"]],
                                                                      abs=1e-3)
    assert twin.clients.sagemaker.list_endpoints()["Endpoints"] == []
    assert not leftovers(twin_since, twin)
