"""The twin's state: S3 kept on disk between twins, one twin per process, and the pytest fixture
people use for their own SageMaker SDK code."""

from __future__ import annotations

import json

import pytest

from sagetwin.core.errors import ConfigurationError


def test_s3_is_kept_on_disk_between_twins(sagetwin_home):
    from sagetwin.aws.twin import Twin

    with Twin(persist=True) as first:
        first.clients.s3.create_bucket(Bucket="kept-between-runs")
        first.clients.s3.put_object(Bucket="kept-between-runs", Key="data/train/rows.txt", Body=b"one\n")
    with Twin(persist=True) as second:
        body = second.clients.s3.get_object(Bucket="kept-between-runs", Key="data/train/rows.txt")["Body"].read()
    assert body == b"one\n"
    assert (sagetwin_home / "aws" / "s3" / "kept-between-runs" / "data" / "train" / "rows.txt").is_file()
    with Twin(persist=True) as third:
        third.clients.s3.delete_object(Bucket="kept-between-runs", Key="data/train/rows.txt")
    with Twin(persist=True) as fourth:
        listed = fourth.clients.s3.list_objects_v2(Bucket="kept-between-runs").get("Contents", [])
    assert listed == []  # deleted objects stay deleted


def test_one_twin_per_process(sagetwin_home):
    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as first:
        with pytest.raises(ConfigurationError, match="already runs in this process"):
            Twin(persist=False).start()
        assert first.clients.s3.list_buckets() is not None
    with Twin(persist=False):  # and another once the first has stopped
        pass


USER_TEST = '''
import sagemaker


def test_my_sdk_code_offline(sagetwin_aws):
    session = sagemaker.Session()
    bucket = session.default_bucket()
    assert bucket == "sagemaker-us-east-1-123456789012"
    assert sagemaker.get_execution_role().endswith(":role/SageMakerExecutionRole")
    uri = session.upload_string_as_file_body("hello", bucket=bucket, key="notes/hello.txt")
    assert session.read_s3_file(bucket, "notes/hello.txt") == "hello"
'''


@pytest.mark.slow
def test_people_test_their_sdk_code_with_the_sagetwin_aws_fixture(tmp_path):
    from tests.test_pytest_plugin_and_check import run_pytest

    (tmp_path / "test_sdk.py").write_text(USER_TEST)
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout


def test_sagetwin_endpoints_lists_and_deletes_a_running_twins_endpoints(sagetwin_home):
    from sagetwin.aws.twin import Twin
    from tests.conftest import run_cli

    image = ("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:"
             "2.3.0-transformers4.48.0-cpu-py311-ubuntu22.04")
    with Twin(persist=False) as twin:
        sm = twin.clients.sagemaker
        sm.create_model(ModelName="listed-model", ExecutionRoleArn=twin.role_arn,
                        PrimaryContainer={"Image": image, "ModelDataUrl": "s3://nowhere/model.tar.gz"})
        sm.create_endpoint_config(EndpointConfigName="listed-config", ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "listed-model", "InitialInstanceCount": 1,
            "InstanceType": "ml.g4dn.xlarge"}])
        sm.create_endpoint(EndpointName="listed-endpoint", EndpointConfigName="listed-config")
        listed = run_cli("endpoints", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [row["name"] for row in json.loads(listed.stdout) if row["backend"].startswith("aws-twin")] == \
            ["listed-endpoint"]
        deleted = run_cli("endpoints", "--delete", "listed-endpoint", "--yes")
        assert deleted.returncode == 0, deleted.stderr
        assert sm.list_endpoints()["Endpoints"] == []
    assert not (sagetwin_home / "aws" / "running").exists() or not any((sagetwin_home / "aws" / "running").iterdir())
