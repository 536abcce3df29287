"""What the twin refuses or bounds so that no request makes it start unbounded threads or hold
unbounded memory: the API model's ranges checked as the service checks them, async queues that
grow workers as needed and throttle past a memory bound, transform inputs read within a bound,
and output paths that lead somewhere."""

from __future__ import annotations

import gzip
import os
import threading

import pytest

from sagetwin.aws.async_invocations import AsyncQueue
from sagetwin.aws.constraints import constraint_message
from sagetwin.aws.s3 import split_uri
from sagetwin.aws.transform_run import RecordError, bounded_gunzip
from tests import test_aws_twin
from tests.aws import twin_client

twin, sdk = test_aws_twin.twin, test_aws_twin.sdk  # module-scoped fixtures: this module's own twin and SDK session

VARIANT = {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.g4dn.xlarge", "InitialInstanceCount": 1}


def test_the_models_ranges_are_checked_in_the_services_words():
    config = {"EndpointConfigName": "c", "ProductionVariants": [VARIANT], "AsyncInferenceConfig": {
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 10**7}, "OutputConfig": {"S3OutputPath": "s3://b/o"}}}
    assert constraint_message("sagemaker", "CreateEndpointConfig", config) == (
        "1 validation error detected: Value '10000000' at 'asyncInferenceConfig.clientConfig."
        "maxConcurrentInvocationsPerInstance' failed to satisfy constraint: Member must have value less than or "
        "equal to 1000")
    several = constraint_message("sagemaker", "CreateEndpointConfig", {
        "EndpointConfigName": "bad_name", "ProductionVariants": [{**VARIANT, "InitialInstanceCount": 0}]})
    assert several.startswith("2 validation errors detected: ")
    assert "at 'endpointConfigName' failed to satisfy constraint: Member must satisfy regular expression" in several
    assert "at 'productionVariants.1.member.initialInstanceCount'" in several
    assert constraint_message("sagemaker", "CreateEndpointConfig", {
        "EndpointConfigName": "good-name", "ProductionVariants": [VARIANT]}) is None


def test_out_of_range_values_are_refused_by_the_twin_before_anything_runs(twin, sdk):
    from botocore.exceptions import ClientError

    sm = twin_client(twin, "sagemaker")
    with pytest.raises(ClientError, match="less than or equal to 1000") as info:
        sm.create_endpoint_config(
            EndpointConfigName="many-workers", ProductionVariants=[VARIANT], AsyncInferenceConfig={
                "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 10**7},
                "OutputConfig": {"S3OutputPath": f"s3://{sdk['bucket']}/o"}})
    assert info.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError, match="less than or equal to 3"):
        sm.create_transform_job(
            TransformJobName="many-retries", ModelName="m", ModelClientConfig={"InvocationsMaxRetries": 10**9},
            TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in"}}},
            TransformOutput={"S3OutputPath": f"s3://{sdk['bucket']}/x"},
            TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1})
    with pytest.raises(ClientError, match="MaxPayloadInMB 0"):
        sm.create_transform_job(
            TransformJobName="chunked", ModelName="m", MaxPayloadInMB=0, MaxConcurrentTransforms=10**6,
            TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in"}}},
            TransformOutput={"S3OutputPath": f"s3://{sdk['bucket']}/x"},
            TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1})
    with pytest.raises(ClientError, match="names no S3 bucket"):
        sm.create_endpoint_config(EndpointConfigName="nowhere", ProductionVariants=[VARIANT], AsyncInferenceConfig={
            "OutputConfig": {"S3OutputPath": "https://example.com/answers"}})
    assert not [c for c in sm.list_endpoint_configs()["EndpointConfigs"]
                if c["EndpointConfigName"] in ("many-workers", "nowhere")]


def test_s3_https_addresses_name_their_bucket_and_key():
    assert split_uri("https://bucket.s3.us-east-1.amazonaws.com/a/b") == ("bucket", "a/b")
    assert split_uri("https://s3.eu-west-1.amazonaws.com/bucket/a") == ("bucket", "a")
    assert split_uri("s3://bucket/a/b") == ("bucket", "a/b")
    with pytest.raises(ValueError, match="neither an s3:// URI nor an S3 https:// address"):
        split_uri("https://example.com/a")


class FakeCall:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def header(self, name: str, default: str = "") -> str:
        return default


class FakeS3:
    def __init__(self) -> None:
        self.written: dict[str, bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> None:  # noqa: N803
        self.written[Key] = Body


def test_async_workers_start_as_requests_come_and_queued_bodies_are_bounded(monkeypatch):
    from sagetwin.aws import async_invocations

    monkeypatch.setattr(async_invocations, "MAX_QUEUED_INLINE_BYTES", 1000)
    release, s3 = threading.Event(), FakeS3()

    def invoke(body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        release.wait(10)
        return body[::-1], "application/json"

    config = {"ClientConfig": {"MaxConcurrentInvocationsPerInstance": 1000}, "OutputConfig": {
        "S3OutputPath": "s3://bucket/answers"}}
    queue = AsyncQueue("e", config, s3, invoke)
    try:
        assert len(queue._workers) == 0  # none before the first request (not 1,000 idle threads)
        replies = [queue.submit(FakeCall(b"x" * 100)) for _ in range(12)]
        assert [r.status for r in replies[:10]] == [202] * 10
        assert [r.status for r in replies[10:]] == [429, 429]  # 10 x 100 bytes held: the 11th is throttled
        assert b"ThrottlingException" in replies[10].body or "ThrottlingException" in str(replies[10].headers)
        assert len(queue._workers) == 10  # a worker per waiting request, up to the concurrency
        release.set()
        deadline = 50
        while len(s3.written) < 10 and deadline:
            threading.Event().wait(0.1)
            deadline -= 1
        assert len(s3.written) == 10
        assert queue.submit(FakeCall(b"x" * 100)).status == 202  # room again once answered
    finally:
        release.set()
        queue.close()
        queue.join(5)


def test_a_gzip_bomb_is_stopped_at_the_bound_and_good_gzip_unpacks_whole():
    members = gzip.compress(b"a" * 100) + gzip.compress(b"b" * 50)
    assert bounded_gunzip(members, 1000, "s3://b/k") == b"a" * 100 + b"b" * 50
    with pytest.raises(RecordError, match="more than 1000000 bytes.*SAGETWIN_TRANSFORM_MAX_OBJECT_MB"):
        bounded_gunzip(gzip.compress(b"\0" * 50_000_000), 1_000_000, "s3://b/k")
    with pytest.raises(RecordError, match="not valid gzip"):
        bounded_gunzip(b"not gzip at all", 1000, "s3://b/k")


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a folder to another user needs root")
def test_a_home_folder_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    from sagetwin.core.errors import ConfigurationError
    from sagetwin.core.paths import home_dir, home_folder

    planted = tmp_path / "home"
    planted.mkdir()
    os.chown(planted, 65534, 65534)
    monkeypatch.setenv("SAGETWIN_HOME", str(planted))
    with pytest.raises(ConfigurationError, match="belongs to another user") as info:
        home_dir()
    assert "SAGETWIN_HOME" in info.value.fix
    os.chown(planted, 0, 0)
    (planted / "aws").mkdir()
    os.chown(planted / "aws", 65534, 65534)
    with pytest.raises(ConfigurationError, match="belongs to another user"):
        home_folder("aws", "s3")


@pytest.mark.parametrize("instance_type", ["ml.g5.2xlarge", "ml.g6.xlarge", "ml.p4d.24xlarge", "ml.p5.48xlarge",
                                           "ml.inf2.xlarge", "ml.trn1.2xlarge", "ml.g4dn.xlarge"])
def test_instance_types_aws_accepts_today_pass_the_twin(twin, sdk, instance_type):
    """The service model's enum is the one list: moto's own, older one (no ml.g5) is set aside."""
    import botocore.session

    hosting = botocore.session.get_session().get_service_model("sagemaker").shape_for("ProductionVariantInstanceType")
    assert instance_type in hosting.enum  # the case is one the service accepts
    sm = twin_client(twin, "sagemaker")
    name = f"current-{instance_type.replace('.', '-')}"
    sm.create_model(ModelName=name, ExecutionRoleArn=sdk["role"], PrimaryContainer={
        "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:"
                 "1.13.1-transformers4.26.0-gpu-py39-cu117-ubuntu20.04"})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {**VARIANT, "ModelName": name, "InstanceType": instance_type}])
    described = sm.describe_endpoint_config(EndpointConfigName=name)
    assert described["ProductionVariants"][0]["InstanceType"] == instance_type
    sm.delete_endpoint_config(EndpointConfigName=name)
    sm.delete_model(ModelName=name)


def test_a_misspelt_instance_type_gets_the_services_validation_error(twin, sdk):
    from botocore.exceptions import ClientError

    sm = twin_client(twin, "sagemaker")
    with pytest.raises(ClientError) as hosting:
        sm.create_endpoint_config(EndpointConfigName="misspelt", ProductionVariants=[
            {**VARIANT, "InstanceType": "ml.g5.2xlarg"}])
    assert hosting.value.response["Error"]["Code"] == "ValidationException"
    assert hosting.value.response["Error"]["Message"].startswith(
        "1 validation error detected: Value 'ml.g5.2xlarg' at 'productionVariants.1.member.instanceType' failed to "
        "satisfy constraint: Member must satisfy enum value set: [")
    with pytest.raises(ClientError, match="Value 'ml.p3.2xlarg' at 'resourceConfig.instanceType'"):
        sm.create_training_job(
            TrainingJobName="misspelt", RoleArn=sdk["role"], StoppingCondition={"MaxRuntimeInSeconds": 60},
            AlgorithmSpecification={"TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/x:1",
                                    "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": f"s3://{sdk['bucket']}/o"},
            ResourceConfig={"InstanceType": "ml.p3.2xlarg", "InstanceCount": 1, "VolumeSizeInGB": 1})
    assert not [c for c in sm.list_endpoint_configs()["EndpointConfigs"] if c["EndpointConfigName"] == "misspelt"]
