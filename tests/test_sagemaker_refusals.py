"""The `sagemaker` backend's refusals and billed options against moto's server: a quota refusal
(from Service Quotas before launch, and from CreateTrainingJob itself), spot training and two
instances as SageMaker receives them, `-o KEY=VALUE`, and `endpoints --delete-all` asking for
each endpoint on a terminal. moto refuses nothing by itself: where a test needs a refusal it
says so and makes it at the botocore call, so everything above that call is sagetwin's real code.
"""

from __future__ import annotations

import json
import re
import sys

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

import sagetwin
from sagetwin.core.progress import SilentReporter
from tests import test_sagemaker_backend as moto_fixtures
from tests.aws import REGION, ROLE
from tests.conftest import TRAIN_SCRIPTS, run_cli
from tests.test_progress import ANSI, run_on_a_terminal

moto_server, aws = moto_fixtures.moto_server, moto_fixtures.aws  # moto's server on 127.0.0.1, this module's own

QUOTA_MESSAGE = ("The account-level service limit 'ml.p3.2xlarge for training job usage' is 0 Instances, with current "
                 "utilization of 0 Instances and a request delta of 1 Instances.")


def sm_client():
    return boto3.client("sagemaker", region_name=REGION)


def job(**options) -> sagetwin.HuggingFaceJob:
    return sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="sagemaker",
                                   reporter=SilentReporter(), hyperparameters={"epochs": 1}, **options)


def refuse(monkeypatch, operation: str, code: str, message: str) -> list[str]:
    """Make the service refuse ``operation`` (moto never does); returns the operations sent."""
    sent: list[str] = []
    real = BaseClient._make_api_call

    def call(self, name, params):
        sent.append(name)
        if name == operation:
            raise ClientError({"Error": {"Code": code, "Message": message}}, name)
        return real(self, name, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call)
    return sent


def test_a_quota_refusal_at_create_names_the_quota_and_no_job_that_could_bill(aws, tmp_path, monkeypatch):
    (tmp_path / "rows.txt").write_text("one\n")
    sent = refuse(monkeypatch, "CreateTrainingJob", "ResourceLimitExceeded", QUOTA_MESSAGE)
    with pytest.raises(sagetwin.ConfigurationError) as info:
        job().fit({"train": str(tmp_path)})
    text = str(info.value)
    assert "no quota for this instance type" in text and "ml.p3.2xlarge for training job usage" in text, text
    assert "Service Quotas" in text
    # no job was created, so none can bill: nothing to stop, and no false alarm about one
    assert "StopTrainingJob" not in sent and "bill" not in text and "stop-training-job" not in text, (sent, text)


def test_a_zero_quota_seen_before_launch_stops_the_run_before_any_upload(aws, tmp_path, monkeypatch):
    """Service Quotas (not in moto) answers as it does for a new account: 0 p3 instances for training."""
    (tmp_path / "rows.txt").write_text("one\n")
    sent: list[str] = []
    real = BaseClient._make_api_call

    def call(self, name, params):
        sent.append(name)
        if name == "ListServiceQuotas":
            return {"Quotas": [{"QuotaName": "ml.p3.2xlarge for training job usage", "Value": 0.0}]}
        return real(self, name, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call)
    with pytest.raises(sagetwin.ConfigurationError) as info:
        job(instance_count=2).fit({"train": str(tmp_path)})
    assert "quota 'ml.p3.2xlarge for training job usage' is 0, but 2 instance(s) are needed" in str(info.value)
    assert "PutObject" not in sent and "CreateTrainingJob" not in sent, sent


def test_two_instances_and_spot_reach_the_request_as_the_sdk_sends_them(aws, tmp_path):
    (tmp_path / "rows.txt").write_text("one\n")
    spot = job(instance_count=2, distribution={"torch_distributed": {"enabled": True}},
               backend_options={"use_spot_instances": True, "max_wait": 7200}, max_run=3600)
    result = spot.fit({"train": str(tmp_path)})
    described = sm_client().describe_training_job(TrainingJobName=result.job_name)
    assert described["ResourceConfig"]["InstanceCount"] == 2
    assert described["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"
    assert described["EnableManagedSpotTraining"] is True
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert described["CheckpointConfig"]["S3Uri"].endswith(f"/sagetwin/{result.job_name}/checkpoints")


def test_backend_options_on_the_command_line(monkeypatch, tmp_path, capfd):
    """`-o KEY=VALUE`: values are JSON when they parse (true, 7200), text otherwise; a pair without
    '=' is named with the fix."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("SAGETWIN_ROLE", ROLE)
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    from sagetwin.cli import main

    common = ["run", "--backend", "sagemaker", "--model", "tiny", "--dry-run", "--train-size", "16", "--test-size", "8"]
    capfd.readouterr()
    assert main([*common, "-o", "use_spot_instances=true", "-o", "max_wait=7200", "-o", "bucket=my-own-bucket"]) == 0
    data = json.loads(capfd.readouterr().out)
    training = data["requests"][0]["request"]
    assert training["EnableManagedSpotTraining"] is True
    assert training["StoppingCondition"]["MaxWaitTimeInSeconds"] == 7200
    assert training["OutputDataConfig"]["S3OutputPath"].startswith("s3://my-own-bucket/")
    assert data["plan"][0].startswith("training (spot): 1 x ml.p3.2xlarge")
    assert main([*common, "-o", "use_spot_instances"]) == 2
    err = capfd.readouterr().err
    assert "backend option 'use_spot_instances' is not KEY=VALUE" in err and "-o bucket=my-bucket" in err


def managed_endpoint(name: str) -> None:
    client = sm_client()
    client.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "image"})
    client.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.g4dn.xlarge", "InitialInstanceCount": 1}])
    client.create_endpoint(EndpointName=name, EndpointConfigName=name,
                           Tags=[{"Key": "sagetwin:managed", "Value": "true"}, {"Key": "sagetwin:run", "Value": name}])


def test_endpoints_delete_all_asks_for_each_and_deletes_only_what_was_confirmed(aws):
    for name in ("ep-keep-me", "ep-delete-me"):
        managed_endpoint(name)
    without_terminal = run_cli("endpoints", "--backend", "sagemaker", "--delete-all", env=aws["env"])
    assert without_terminal.returncode == 2 and "--yes" in without_terminal.stderr
    assert {e["EndpointName"] for e in sm_client().list_endpoints()["Endpoints"]} == {"ep-keep-me", "ep-delete-me"}

    def answer(output: bytes, write) -> None:
        asked = re.findall(rb"Delete endpoint (\S+)\? \[y/N\] ", output)
        if len(asked) > answer.given:
            write(b"y\n" if asked[-1] == b"ep-delete-me" else b"n\n")
            answer.given += 1

    answer.given = 0  # run_on_a_terminal passes this process's environment (the aws fixture's) on
    code, output = run_on_a_terminal([sys.executable, "-m", "sagetwin.cli", "endpoints", "--backend", "sagemaker",
                                      "--delete-all"], react=answer, timeout=120)
    text = ANSI.sub("", output)
    assert code == 0 and answer.given == 2, text
    assert re.search(r"ep-keep-me .*\[kept\]", text) and re.search(r"ep-delete-me .*\[deleted\]", text), text
    assert [e["EndpointName"] for e in sm_client().list_endpoints()["Endpoints"]] == ["ep-keep-me"]
