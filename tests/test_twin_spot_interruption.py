"""Stopping and interrupting training jobs as SageMaker does, through the twin on `process`: the
script gets SIGTERM and its last words reach the log; a rehearsed spot interruption restarts the
job from its checkpoints; written as SageMaker SDK v2 users write these cells."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests import test_aws_twin
from tests.test_aws_twin import VERSIONS
from tests.test_twin_training_kinds import job_log

twin, sdk = test_aws_twin.twin, test_aws_twin.sdk  # module-scoped fixtures: this module's own twin and SDK session

RESUMABLE = (Path(__file__).parent / "sdk_workflow" / "resumable" / "train.py").read_text()


def spot_estimator(sdk, source_dir, checkpoints: str, steps: int):
    from sagemaker.huggingface import HuggingFace

    return HuggingFace(entry_point="train.py", source_dir=str(source_dir), instance_type="ml.p3.2xlarge",
                       instance_count=1, role=sdk["role"], sagemaker_session=sdk["session"],
                       use_spot_instances=True, max_run=600, max_wait=1200, checkpoint_s3_uri=checkpoints,
                       hyperparameters={"output_dir": "/opt/ml/checkpoints", "steps": steps}, **VERSIONS)


@pytest.fixture
def rehearsing(twin):
    twin.rehearse_spot_interruptions("/saved checkpoint-3$/")
    yield twin
    twin.rehearse_spot_interruptions(None)


def test_a_spot_job_interrupted_once_completes_from_its_checkpoint(rehearsing, sdk, tmp_path):
    (tmp_path / "train.py").write_text(RESUMABLE)
    estimator = spot_estimator(sdk, tmp_path, f"s3://{sdk['bucket']}/spot-rehearsal/checkpoints", steps=8)
    estimator.fit()

    name = estimator.latest_training_job.name
    described = sdk["session"].sagemaker_client.describe_training_job(TrainingJobName=name)
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Completed", "Completed")
    assert [t["Status"] for t in described["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Interrupted", "Starting", "Downloading", "Training", "Uploading",
        "Completed"]
    assert described["BillableTimeInSeconds"] < described["TrainingTimeInSeconds"]

    log = job_log(rehearsing, name).splitlines()
    resumed = [line for line in log if line.startswith("resuming from")]
    stopped_at = next(line for line in log if line.startswith("received SIGTERM at step"))
    last_step = int(stopped_at.rsplit(" ", 1)[1])
    assert last_step >= 3
    assert resumed == ["resuming from nothing", f"resuming from checkpoint-{last_step}"]
    assert log.index(stopped_at) < log.index(resumed[1])  # the SIGTERM came before the restart
    # the restarted run did only the steps left, and the model is the one it finished
    assert sum(line.startswith("saved checkpoint-") for line in log) == 8


def test_a_person_can_still_stop_a_rehearsed_spot_job_while_it_waits_for_capacity(rehearsing, sdk, tmp_path):
    (tmp_path / "train.py").write_text(RESUMABLE)
    estimator = spot_estimator(sdk, tmp_path, f"s3://{sdk['bucket']}/spot-rehearsal/stopped", steps=50)
    estimator.fit(wait=False)
    name = estimator.latest_training_job.name
    sm = sdk["session"].sagemaker_client
    deadline = time.monotonic() + 60
    while sm.describe_training_job(TrainingJobName=name)["SecondaryStatus"] != "Interrupted":
        assert time.monotonic() < deadline, "the rehearsal never interrupted the job"
        time.sleep(0.1)
    sm.stop_training_job(TrainingJobName=name)
    described = sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}) or sm.describe_training_job(
        TrainingJobName=name)
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert "resuming from checkpoint" not in job_log(rehearsing, name)


def test_stop_training_job_gives_the_script_sigterm_and_keeps_what_it_says(twin, sdk, tmp_path):
    (tmp_path / "train.py").write_text(RESUMABLE)
    estimator = spot_estimator(sdk, tmp_path, f"s3://{sdk['bucket']}/spot-rehearsal/person-stop", steps=500)
    estimator.fit(wait=False)
    name = estimator.latest_training_job.name
    deadline = time.monotonic() + 60
    while "saved checkpoint-2" not in job_log(twin, name):
        assert time.monotonic() < deadline, "the job never trained"
        time.sleep(0.2)
    sm = sdk["session"].sagemaker_client
    answered_in = time.monotonic()
    sm.stop_training_job(TrainingJobName=name)
    assert time.monotonic() - answered_in < 5  # the call returns at once; the script has its grace period
    assert sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "Stopping"
    described = sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}) or sm.describe_training_job(
        TrainingJobName=name)
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert [t["Status"] for t in described["SecondaryStatusTransitions"]][-3:] == ["Training", "Stopping", "Stopped"]
    assert any(line.startswith("received SIGTERM at step") for line in job_log(twin, name).splitlines())


@pytest.mark.parametrize("when, expected", [
    ("30s", "after 30 s of training"), ("40lines", "after 40 lines of its log"),
    ("/saved checkpoint/", "at the first log line matching /saved checkpoint/")])
def test_the_rehearsal_point_reads_as_written(when, expected):
    from sagetwin.aws.spot import InterruptWhen

    assert str(InterruptWhen.parse(when)) == expected


@pytest.mark.parametrize("when, named", [("3x", "30s"), ("lines", "/REGEX/"), ("", "40lines"),
                                         ("/[unclosed/", "not a regular expression")])
def test_a_rehearsal_point_that_is_not_one_is_refused_clearly(when, named):
    from sagetwin.aws.spot import InterruptWhen
    from sagetwin.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as raised:
        InterruptWhen.parse(when)
    assert "--interrupt-spot" in raised.value.render() and named in raised.value.render()


def test_the_bundled_trainer_script_resumes_from_its_checkpoint_after_an_interruption(twin, sdk, sample_channels,
                                                                                        tiny_hyperparameters):
    from sagemaker.huggingface import HuggingFace

    inputs = {name: sdk["session"].upload_data(path, key_prefix=f"spot-trainer/{name}")
              for name, path in sample_channels.items()}
    twin.rehearse_spot_interruptions("/^saved checkpoint-2$/")
    try:
        estimator = HuggingFace(
            entry_point="train.py", source_dir=str(Path(__file__).parents[1] / "train_scripts"),
            instance_type="ml.p3.2xlarge", instance_count=1, role=sdk["role"], sagemaker_session=sdk["session"],
            use_spot_instances=True, max_run=600, max_wait=1200,
            checkpoint_s3_uri=f"s3://{sdk['bucket']}/spot-trainer/checkpoints",
            hyperparameters={**tiny_hyperparameters, "model_name": "/opt/ml/input/data/model", "logging_steps": 1,
                             "max_steps": 20, "checkpoint_dir": "/opt/ml/checkpoints", "save_steps": 2}, **VERSIONS)
        estimator.fit(inputs)
    finally:
        twin.rehearse_spot_interruptions(None)
    log = job_log(twin, estimator.latest_training_job.name).splitlines()
    resumed = [line for line in log if line.startswith("resuming from")]
    assert len(resumed) == 2 and resumed[0] == "resuming from nothing"
    newest = int(resumed[1].rsplit("-", 1)[1])  # checkpoint-2, or a later one saved before the SIGTERM landed
    assert newest >= 2 and newest % 2 == 0
    after_restart = log[log.index(resumed[1]):]
    steps = [int(line.split()[1].split("/")[0]) for line in after_restart if line.startswith("step ")]
    assert steps and steps[0] == newest + 1 and steps[-1] == 20  # the Trainer went on, not from the start
    assert sdk["session"].sagemaker_client.describe_training_job(
        TrainingJobName=estimator.latest_training_job.name)["TrainingJobStatus"] == "Completed"
