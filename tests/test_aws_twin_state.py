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


INFERENCE_IMAGE = ("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:"
                   "2.3.0-transformers4.48.0-cpu-py311-ubuntu22.04")


def create_endpoint(twin, endpoint: str, config: str, model: str) -> None:
    """Model, config and endpoint through the twin's API; the model's archive does not exist, so the
    endpoint ends Failed, which is all these tests need of it."""
    sm = twin.clients.sagemaker
    sm.create_model(ModelName=model, ExecutionRoleArn=twin.role_arn,
                    PrimaryContainer={"Image": INFERENCE_IMAGE, "ModelDataUrl": "s3://nowhere/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.g4dn.xlarge"}])
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)


def test_sagetwin_endpoints_lists_and_deletes_a_running_twins_endpoints(sagetwin_home):
    from sagetwin.aws.twin import Twin
    from tests.conftest import run_cli

    with Twin(persist=False) as twin:
        sm = twin.clients.sagemaker
        create_endpoint(twin, "listed-endpoint", "listed-config", "listed-model")
        listed = run_cli("endpoints", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [row["name"] for row in json.loads(listed.stdout) if row["backend"].startswith("aws-twin")] == \
            ["listed-endpoint"]
        deleted = run_cli("endpoints", "--delete", "listed-endpoint", "--yes")
        assert deleted.returncode == 0, deleted.stderr
        assert sm.list_endpoints()["Endpoints"] == []
    assert not (sagetwin_home / "aws" / "running").exists() or not any((sagetwin_home / "aws" / "running").iterdir())


def twin_client(twin, service: str):
    """A client with the credentials the twin hands out (its environment)."""
    import boto3

    env = twin.environment()
    return boto3.session.Session(region_name="us-east-1", aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                 aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                 aws_session_token=env["AWS_SESSION_TOKEN"]).client(service, endpoint_url=twin.url)


class RecordingEndpoint:
    """Stands in for a backend's endpoint: records what InvokeEndpoint handed it."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def invoke(self, body, content_type, accept):
        self.calls.append((body, content_type, accept, None))
        return b'{"ok": true}', "application/json"

    def invoke_with_attributes(self, body, content_type, accept, custom_attributes):
        self.calls.append((body, content_type, accept, custom_attributes))
        return b'{"ok": true}', "application/json"

    def delete(self) -> None:
        pass


def test_invoke_endpoint_forwards_body_content_type_accept_and_custom_attributes(sagetwin_home):
    from botocore.exceptions import ClientError

    from sagetwin.aws.endpoints import TwinEndpoint
    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin:
        served = RecordingEndpoint()
        twin.endpoints.endpoints["recorded"] = TwinEndpoint("recorded", status="InService", served=served)
        runtime = twin_client(twin, "sagemaker-runtime")
        answer = runtime.invoke_endpoint(EndpointName="recorded", Body=b"a,b", ContentType="text/csv",
                                         Accept="application/json", CustomAttributes="trace=42")
        plain = runtime.invoke_endpoint(EndpointName="recorded", Body=b"{}", ContentType="application/json")
        with pytest.raises(ClientError) as missing:
            runtime.invoke_endpoint(EndpointName="nope", Body=b"{}")
    assert json.loads(answer["Body"].read()) == {"ok": True} and answer["ContentType"] == "application/json"
    assert answer["InvokedProductionVariant"] == "AllTraffic" and plain["Body"].read()
    assert served.calls == [(b"a,b", "text/csv", "application/json", "trace=42"),
                            (b"{}", "application/json", "application/json", None)]
    assert "Endpoint nope of account 123456789012 not found" in str(missing.value)


def test_a_local_http_endpoint_sends_custom_attributes_as_the_service_does():
    import http.server
    import threading

    from sagetwin.emulation.http_endpoint import CUSTOM_ATTRIBUTES_HEADER, HttpInvoker

    seen: list[str | None] = []

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers.get(CUSTOM_ATTRIBUTES_HEADER))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        invoker = HttpInvoker("echo", "127.0.0.1", server.server_address[1])
        invoker.invoke(b"{}", "application/json", "application/json", "trace=7")
        invoker.invoke(b"{}", "application/json", "application/json")
        invoker.close()
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["trace=7", None]


def test_only_the_twins_own_callers_are_served(sagetwin_home):
    import urllib.request

    import boto3
    from botocore.exceptions import ClientError

    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin:
        stranger = boto3.session.Session(region_name="us-east-1", aws_access_key_id="AKIASTRANGER",
                                         aws_secret_access_key="x").client("sagemaker", endpoint_url=twin.url)
        with pytest.raises(ClientError) as refused:
            stranger.list_training_jobs()
        assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
        page = urllib.request.Request(f"{twin.url}/", headers={"Origin": "http://evil.example"})
        with pytest.raises(urllib.error.HTTPError) as from_a_page:
            urllib.request.urlopen(page, timeout=10)
        assert from_a_page.value.code == 403
        rebound = urllib.request.Request(f"{twin.url}/", headers={"Host": "attacker.example"})
        with pytest.raises(urllib.error.HTTPError) as other_host:
            urllib.request.urlopen(rebound, timeout=10)
        assert other_host.value.code == 403
        assert twin_client(twin, "sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_names_are_checked_and_taken_names_refused_as_the_service_does(sagetwin_home):
    from botocore.exceptions import ClientError

    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin:
        sm = twin.clients.sagemaker
        request = {"AlgorithmSpecification": {"TrainingImage": INFERENCE_IMAGE.replace("inference", "training"),
                                              "TrainingInputMode": "File"},
                   "RoleArn": twin.role_arn, "OutputDataConfig": {"S3OutputPath": "s3://nowhere/out"},
                   "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
                   "StoppingCondition": {"MaxRuntimeInSeconds": 600}}
        with pytest.raises(ClientError) as bad_name:
            sm.create_training_job(TrainingJobName="../escape", **request)
        assert "failed to satisfy constraint" in str(bad_name.value)
        sm.create_training_job(TrainingJobName="taken", **request)  # fails later: no sagemaker_program
        with pytest.raises(ClientError) as taken:
            sm.create_training_job(TrainingJobName="taken", **request)
        assert taken.value.response["Error"]["Code"] == "ResourceInUse"
        twin.jobs.stop_all()  # waits for the job's thread
        assert sm.describe_training_job(TrainingJobName="taken")["TrainingJobStatus"] == "Failed"
        assert [j["TrainingJobName"] for j in sm.list_training_jobs(StatusEquals="Failed")["TrainingJobSummaries"]] \
            == ["taken"]  # filtered on what happened, not on moto's static "Completed"
        assert sm.list_training_jobs(StatusEquals="Completed")["TrainingJobSummaries"] == []
        with pytest.raises(ClientError) as finished:
            sm.stop_training_job(TrainingJobName="taken")
        assert "is in status Failed" in str(finished.value)
        create_endpoint(twin, "e", "c", "m")
        with pytest.raises(ClientError) as twice:
            sm.create_endpoint(EndpointName="e", EndpointConfigName="c")
        assert "Cannot create already existing endpoint" in str(twice.value)


def _job_runners() -> list[int]:
    import os

    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                if b"sagetwin.aws.job_runner" in file.read():
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def test_a_job_runner_waits_ready_while_the_twin_runs_and_goes_with_it(sagetwin_home):
    import time

    from sagetwin.aws.twin import Twin

    before = set(_job_runners())
    with Twin(persist=False):
        deadline = time.monotonic() + 10
        while not set(_job_runners()) - before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(_job_runners()) - before, "no job runner was started ahead of the first job"
    assert not set(_job_runners()) - before, "a job runner outlived the twin"


def test_callers_keep_their_connection_between_calls(sagetwin_home):
    """HTTP/1.1 keep-alive: each call does not pay for a new connection (and a new thread)."""
    import http.client

    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin:
        connection = http.client.HTTPConnection("127.0.0.1", twin.port, timeout=10)
        try:
            for _ in range(3):
                connection.request("POST", "/endpoints/none/invocations", body=b"{}",
                                   headers={"Content-Type": "application/json"})
                answer = connection.getresponse()
                answer.read()
                assert answer.status == 403  # unsigned: refused, on the same connection
                assert answer.getheader("Connection", "").lower() != "close"
            assert connection.sock is not None
        finally:
            connection.close()


def test_s3_keys_with_escapes_and_question_marks_are_kept_as_written(sagetwin_home):
    from sagetwin.aws.twin import Twin

    with Twin(persist=False) as twin:
        s3 = twin_client(twin, "s3")
        s3.create_bucket(Bucket="keys-as-written")
        keys = ["a%41.txt", "x?y.csv", "plus+and space.json", "percent%25/inner%3F.bin"]
        for key in keys:
            s3.put_object(Bucket="keys-as-written", Key=key, Body=key.encode())
        listed = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="keys-as-written")["Contents"])
        assert listed == sorted(keys)
        assert all(s3.get_object(Bucket="keys-as-written", Key=key)["Body"].read() == key.encode() for key in keys)
