"""Billed resources never outlive an error: a job sagetwin loses track of is stopped, a failed
delete keeps the endpoint listed and retryable, and the original error is what is reported."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

import sagetwin
from sagetwin.backends.sagemaker.backend import SageMakerBackend
from sagetwin.backends.sagemaker.endpoints import _missing
from sagetwin.core.predictor import Predictor
from sagetwin.core.progress import SilentReporter
from tests.conftest import TRAIN_SCRIPTS
from tests.test_plugins import Recorder, make_backend


def client_error(code: str, message: str, operation: str = "DescribeEndpoint") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class StopRecorder:
    def __init__(self) -> None:
        self.stopped: list[str] = []

    def stop_training_job(self, TrainingJobName: str) -> None:  # noqa: N803 (boto's name)
        self.stopped.append(TrainingJobName)


def test_a_job_lost_while_following_its_logs_is_stopped():
    backend = SageMakerBackend(role="arn:aws:iam::1:role/r")
    client = StopRecorder()
    backend._sm = SimpleNamespace(sagemaker_client=client)  # what following the job would use
    backend._boto = SimpleNamespace(region_name="us-east-1")
    estimator = SimpleNamespace(fit=lambda *a, **k: (_ for _ in ()).throw(
        client_error("ThrottlingException", "Rate exceeded", "GetLogEvents")))
    with pytest.raises(sagetwin.SagetwinError) as info:
        backend._run_training(estimator, {}, "job-1", SilentReporter())
    assert client.stopped == ["job-1"]
    assert "ThrottlingException" in str(info.value) and "job-1 was stopped" in str(info.value)


class ExpiredCredentials:
    def stop_training_job(self, TrainingJobName: str) -> None:  # noqa: N803 (boto's name)
        raise client_error("ExpiredTokenException", "The security token included in the request is expired",
                           "StopTrainingJob")


def test_a_job_that_cannot_be_stopped_after_sts_expires_is_named_with_its_cost_and_the_command():
    """Credentials expire mid-training: following fails, and so does the stop. The message says the job
    may bill on, at what hourly price, until when, and the command that stops it."""
    backend = SageMakerBackend(role="arn:aws:iam::1:role/r")
    backend._sm = SimpleNamespace(sagemaker_client=ExpiredCredentials())
    backend._boto = SimpleNamespace(region_name="us-east-1")
    estimator = SimpleNamespace(instance_type="ml.p3.2xlarge", instance_count=2, max_run=86400, fit=lambda *a, **k: (
        _ for _ in ()).throw(client_error("ExpiredTokenException", "The security token is expired",
                                          "DescribeTrainingJob")))
    with pytest.raises(sagetwin.SagetwinError) as info:
        backend._run_training(estimator, {}, "job-2", SilentReporter())
    text = str(info.value)
    assert "ExpiredTokenException" in text and "job-2 could not be stopped" in text
    assert "bill at $7.650/h) until its max_run (86400 s after it started)" in text  # 2 × ml.p3.2xlarge
    assert "aws sagemaker stop-training-job --training-job-name job-2" in text


def test_only_could_not_find_means_already_deleted():
    assert _missing(client_error("ValidationException", "Could not find endpoint \"x\"."))
    assert not _missing(client_error("ValidationException", "Endpoint x is in Creating state; try again later"))
    assert not _missing(client_error("AccessDeniedException", "no"))


class FlakyEndpoint:
    name = "flaky"

    def __init__(self) -> None:
        self.attempts = 0

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        return b"[]", "application/json"

    def delete(self) -> None:
        self.attempts += 1
        if self.attempts == 1:
            raise ConnectionError("network down")


def test_a_failed_delete_says_so_and_can_be_retried():
    deleted_hook: list[str] = []
    predictor = Predictor(FlakyEndpoint(), "flaky", on_delete=lambda ep: deleted_hook.append(ep.name))
    with pytest.raises(sagetwin.EndpointError, match="could not be deleted") as info:
        predictor.delete_endpoint()
    assert "sagetwin endpoints --delete flaky" in info.value.fix
    assert not predictor.deleted and deleted_hook == []
    predictor.delete_endpoint()
    assert predictor.deleted and deleted_hook == ["flaky"]


def test_an_endpoint_is_deleted_when_a_hook_fails_right_after_it_was_created(sagetwin_register_plugin):
    endpoints = []

    class Tracking(make_backend("tracking")):
        def deploy(self, spec, reporter):
            endpoint = super().deploy(spec, reporter)
            endpoints.append(endpoint)
            return endpoint

    class Broken(Recorder):
        @sagetwin.hookimpl
        def sagetwin_endpoint_created(self, endpoint, backend):
            raise RuntimeError("a plugin broke")

    sagetwin_register_plugin(Broken(Tracking), name="broken")
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="tracking", reporter=SilentReporter())
    with pytest.raises(RuntimeError, match="a plugin broke"):
        job.deploy(model_data="fake://model.tar.gz")
    assert len(endpoints) == 1 and endpoints[0].deleted


def test_a_refused_create_means_no_job_unless_the_job_already_exists():
    """A create refused for want of quota started nothing; one refused because the name is taken
    (botocore retried a create whose reply was lost) means the job exists and may bill."""
    from sagetwin.backends.sagemaker.diagnosis import never_created

    assert never_created(client_error("ResourceLimitExceeded", "The account-level service limit ...",
                                      "CreateTrainingJob"))
    assert not never_created(client_error("ResourceInUse", "Training job names must be unique within an AWS "
                                          "account and region", "CreateTrainingJob"))
    assert not never_created(client_error("ValidationException", "names must be unique", "CreateTrainingJob"))
    assert not never_created(client_error("ThrottlingException", "Rate exceeded", "GetLogEvents"))
