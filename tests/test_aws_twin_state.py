"""The twin's state: S3 kept on disk between twins, one twin per process, and the pytest fixture
people use for their own SageMaker SDK code."""

from __future__ import annotations

import json

import pytest

from sagetwin.core.errors import ConfigurationError
from tests.aws import signed, twin_client


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
        first.clients.s3.create_bucket(Bucket="made-by-the-first-twin")
        with pytest.raises(ConfigurationError, match="already runs in this process"):
            Twin(persist=False).start()
        # the refused start touched nothing of the running twin: it still serves, its state kept
        assert "made-by-the-first-twin" in [b["Name"] for b in first.clients.s3.list_buckets()["Buckets"]]
    with Twin(persist=False):  # and another once the first has stopped
        pass


def test_what_the_twin_keeps_is_readable_by_its_user_only(sagetwin_home):
    """The running entry holds the twin's credentials, S3 on disk holds people's models and code:
    0600 files in 0700 folders, also where an older version left an entry 0644."""
    import os
    import stat

    from sagetwin.aws.twin import Twin

    running = sagetwin_home / "aws" / "running"
    running.mkdir(parents=True, exist_ok=True)
    stale = running / f"{os.getpid()}.json"
    stale.write_text("{}")
    stale.chmod(0o644)
    with Twin(persist=True) as twin:
        twin.clients.s3.create_bucket(Bucket="private-things")
        twin.clients.s3.put_object(Bucket="private-things", Key="model/model.tar.gz", Body=b"weights")
        assert stat.S_IMODE(stale.stat().st_mode) == 0o600 and "credentials" in stale.read_text()
        assert stat.S_IMODE(twin.work_dir.stat().st_mode) == 0o700
    for path in [sagetwin_home / "aws", *(sagetwin_home / "aws" / "s3").rglob("*")]:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


KILLED_TWIN = ("import time, sagetwin.aws\n"
               "twin = sagetwin.aws.start(persist=False)\n"
               "print(twin.work_dir, flush=True)\n"
               "time.sleep(600)\n")


def test_what_a_twin_killed_by_sigterm_left_goes_when_the_next_twin_starts(tmp_path, monkeypatch,
                                                                          no_leftover_processes):
    """A script's in-process twin ended by SIGTERM (no handler, no cleanup) leaves its entry, with
    the credentials it accepted, and its work folder: the next twin's start removes both."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from sagetwin.aws.twin import Twin

    home = tmp_path / "home"
    monkeypatch.setenv("SAGETWIN_HOME", str(home))
    child = subprocess.Popen([sys.executable, "-c", KILLED_TWIN], stdout=subprocess.PIPE, text=True)
    try:
        work = Path(child.stdout.readline().strip())
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
    entry = home / "aws" / "running" / f"{child.pid}.json"
    assert child.returncode == -signal.SIGTERM and entry.is_file() and work.is_dir()
    assert json.loads(entry.read_text())["work_dir"] == str(work)
    with Twin(persist=False) as twin:
        assert not entry.exists() and not work.exists()
        assert (home / "aws" / "running" / f"{os.getpid()}.json").is_file() and twin.work_dir.is_dir()
    assert not list((home / "aws" / "running").iterdir()) and not list((home / "aws" / "work").iterdir())


def test_doctor_removes_entries_of_dead_or_reused_pids_and_keeps_live_ones(tmp_path):
    """A dead pid, and a live pid whose process started at another time (the pid was reused), are
    leftovers; a live twin's entry, an entry of an earlier version (no start time) whose pid lives,
    and a folder an entry names outside the twins' work folders are kept."""
    import os
    import socket

    from sagetwin.core.liveness import start_time
    from tests.conftest import run_cli
    from tests.test_runs import dead_pid

    home = tmp_path / "home"
    running, work = home / "aws" / "running", home / "aws" / "work"
    elsewhere = tmp_path / "twin-not-a-work-folder"
    host, me = socket.gethostname(), os.getpid()
    entries = {
        "dead": ({"host": host, "pid": dead_pid(), "started": "1"}, work / "twin-dead"),
        "reused": ({"host": host, "pid": me, "started": "1"}, work / "twin-reused"),
        "live": ({"host": host, "pid": os.getppid(), "started": start_time(os.getppid())}, work / "twin-live"),
        "old": ({"pid": os.getppid()}, work / "twin-old"),
        "outside": ({"host": host, "pid": dead_pid(), "started": "1"}, elsewhere),
    }
    for name, (identity, folder) in entries.items():
        folder.mkdir(parents=True)
        running.mkdir(parents=True, exist_ok=True)
        (running / f"{identity['pid']}-{name}.json").write_text(json.dumps(
            {**identity, "url": "http://127.0.0.1:1", "credentials": {}, "work_dir": str(folder)}))
    doctor = run_cli("doctor", env={"SAGETWIN_HOME": str(home)})
    assert "[PASS] aws: no files left by killed twins: removed 3 entry(ies) and 2 work folder(s)" in doctor.stdout
    assert sorted(path.name.split("-", 1)[1] for path in running.iterdir()) == ["live.json", "old.json"]
    assert sorted(path.name for path in work.iterdir()) == ["twin-live", "twin-old"] and elsewhere.is_dir()
    assert "[PASS] aws: no files left by killed twins: none" in run_cli("doctor", env={
        "SAGETWIN_HOME": str(home)}).stdout


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
        local_ends = set()
        try:
            for _ in range(3):
                request = signed(twin, "sagemaker", "POST", "/", b"{}", {
                    "X-Amz-Target": "SageMaker.ListTrainingJobs", "Content-Type": "application/x-amz-json-1.1"})
                connection.request("POST", "/", body=request.body, headers=dict(request.headers))
                answer = connection.getresponse()
                assert answer.status == 200 and json.loads(answer.read())["TrainingJobSummaries"] == []
                local_ends.add(connection.sock.getsockname())
        finally:
            connection.close()
    assert len(local_ends) == 1, f"a new connection per call: {local_ends}"


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
