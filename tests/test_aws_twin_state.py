"""The twin's state: S3 kept on disk between twins, one twin per process, and the pytest fixture
people use for their own SageMaker SDK code."""

from __future__ import annotations

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
