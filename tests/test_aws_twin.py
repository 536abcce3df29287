"""The AWS twin: the guide's SageMaker SDK code runs offline unchanged, jobs and endpoints
carried out for real by a backend, failures reported as the service reports them."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO, TRAIN_SCRIPTS, read_until, run_cli, started_by_this_session

GUIDE_SDK = REPO / "tests" / "sdk_workflow" / "guide_sdk.py"
VERSIONS = {"transformers_version": "4.48.0", "pytorch_version": "2.3.0", "py_version": "py311"}


def kept_between_jobs(twin=None) -> set[int]:
    """What a live twin in this process keeps on purpose, named precisely: the job runner it
    started ahead of the next job (the spare it holds, ``job_runner --next``, handed no order yet)
    and the warm model-server parents (``fork_server``) its endpoints fork from. Each is its
    lifeline wrapper (a child of this process) and the one command under it; a job or a forked
    model server under them is not kept."""
    from sagetwin.emulation.warm_serving import warm_servers

    wanted = [(parent.proc, ["-m", "sagetwin.emulation.fork_server"])
              for parent in list(warm_servers._parents.values())]
    if twin is not None and twin.jobs._spare is not None:
        wanted.append((twin.jobs._spare, ["-m", "sagetwin.aws.job_runner", "--next"]))
    kept: set[int] = set()
    for popen, tail in wanted:
        try:
            wrapper = psutil.Process(popen.pid)
            if wrapper.ppid() != os.getpid() or wrapper.cmdline()[-len(tail):] != tail:
                continue
            kept.add(wrapper.pid)
            kept.update(child.pid for child in wrapper.children() if child.cmdline()[-len(tail):] == tail)
        except psutil.Error:
            continue
    return kept


def described(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid}: {' '.join(proc.cmdline())[:200]}"
    except psutil.Error:
        return f"{proc.pid}: (gone)"


def exec_report(backend: str, *command: str, timeout: float = 600) -> tuple[dict, str]:
    """``command`` run through ``sagetwin exec --backend BACKEND`` as a person runs SDK cells: it
    must succeed and leave nothing running; its ``RESULT {json}`` line, and all it printed."""
    from tests.conftest import run_cli

    since = time.time() - 0.1
    result = run_cli("exec", "--backend", backend, "--no-persist", "--", *command, timeout=timeout)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert not leftovers(since), "the twin of `sagetwin exec`, its jobs and its endpoints end with it"
    return json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:]), out


def leftovers(since: float, twin=None) -> list[str]:
    """Processes this test session started since ``since`` that still run, found by the session
    marker (a job runner, the script behind a lifeline, a forked model server carry no path to
    look for), less what ``twin`` keeps on purpose (``kept_between_jobs``); a stopping process
    group gets a few seconds to go."""
    deadline = time.monotonic() + 5.0
    while True:
        kept = kept_between_jobs(twin)
        left = [proc for proc in started_by_this_session(since) if proc.pid not in kept]
        if not left or time.monotonic() > deadline:
            return [described(proc) for proc in left]
        time.sleep(0.2)


def run_guide(backend: str, sample_channels: dict[str, str]) -> dict:
    since = time.time() - 0.1
    result = run_cli("exec", "--backend", backend, "--no-persist", "--", sys.executable, str(GUIDE_SDK),
                     sample_channels["model"], sample_channels["train"], sample_channels["test"], str(TRAIN_SCRIPTS),
                     timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "loaded train_dataset length is: 64" in output  # the SDK printed the job's log from CloudWatch
    assert "Completed - Training job completed" in output
    assert not leftovers(since)  # the CLI's twin, its jobs and endpoints all ended with it
    line = next(line for line in result.stdout.splitlines() if "RESULT {" in line)  # after the SDK's progress dots
    return json.loads(line.split("RESULT ", 1)[1])


def sdk_image(scope: str, instance_type: str) -> str:
    from sagemaker import image_uris

    return image_uris.retrieve("huggingface", "us-east-1", version="4.48.0", base_framework_version="pytorch2.3.0",
                               py_version="py311", instance_type=instance_type, image_scope=scope)


def check_guide_result(result: dict) -> None:
    assert isinstance(result["prediction"], list) and set(result["prediction"][0]) == {"label", "score"}
    assert result["instance_type"] == "ml.p3.2xlarge"
    assert result["training_image"] == sdk_image("training", "ml.p3.2xlarge")
    assert result["status"] == "Completed" and result["model_data"].endswith("/output/model.tar.gz")


@pytest.mark.slow
def test_guide_sdk_workflow_runs_on_process(sample_channels):
    check_guide_result(run_guide("process", sample_channels))


# --- one twin in this process for the failure paths -------------------------------------------


@pytest.fixture(scope="module")
def twin(twin_since, sagetwin_home):
    import sagetwin.aws

    with sagetwin.aws.start(backend="process", persist=False) as running:
        yield running


@pytest.fixture(scope="module")
def sdk(twin):
    import sagemaker

    session = sagemaker.Session()
    return {"session": session, "bucket": session.default_bucket(), "role": sagemaker.get_execution_role()}


def still_serving(twin) -> None:
    assert twin.clients.s3.list_buckets()["Buckets"], "the twin stopped answering after a failure"


def estimator(sdk, source_dir, **overrides):
    from sagemaker.huggingface import HuggingFace

    arguments = {"entry_point": "train.py", "source_dir": str(source_dir), "instance_type": "ml.p3.2xlarge",
                 "instance_count": 1, "role": sdk["role"], "sagemaker_session": sdk["session"], **VERSIONS,
                 "hyperparameters": {"epochs": 1}}
    arguments.update(overrides)
    if "image_uri" in overrides:
        arguments.pop("transformers_version")
        arguments.pop("pytorch_version")
    return HuggingFace(**arguments)


@pytest.fixture(scope="module")
def data_uri(sdk, twin, tmp_path_factory):
    folder = tmp_path_factory.mktemp("channel")
    (folder / "rows.txt").write_text("one\ntwo\n")
    return sdk["session"].upload_data(str(folder), key_prefix="twin-tests/data")


def raising_script(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(
        "import os\nprint('reading', sorted(os.listdir(os.environ['SM_CHANNEL_TRAIN'])))\n"
        "raise ValueError('learning rate must be positive, got -1')\n")
    return tmp_path


def test_a_script_that_raises_fails_the_job_with_its_error_line(sdk, twin, data_uri, tmp_path):
    from sagemaker.exceptions import UnexpectedStatusException

    job = estimator(sdk, raising_script(tmp_path))
    with pytest.raises(UnexpectedStatusException) as caught:
        job.fit({"train": data_uri})
    assert "ValueError: learning rate must be positive, got -1" in str(caught.value)
    described = twin.clients.sagemaker.describe_training_job(TrainingJobName=job.latest_training_job.name)
    assert described["TrainingJobStatus"] == "Failed"
    assert "ExecuteUserScriptError" in described["FailureReason"]
    assert [t["Status"] for t in described["SecondaryStatusTransitions"]][-1] == "Failed"
    still_serving(twin)


def test_a_missing_s3_channel_fails_the_job_as_aws_does(sdk, twin, tmp_path):
    from sagemaker.exceptions import UnexpectedStatusException

    missing = f"s3://{sdk['bucket']}/nothing/under/here"
    with pytest.raises(UnexpectedStatusException) as caught:
        estimator(sdk, raising_script(tmp_path)).fit({"train": missing})
    assert f'No S3 objects found under S3 URL "{missing}"' in str(caught.value)
    still_serving(twin)


def test_a_role_that_does_not_exist_is_refused_at_create(sdk, twin, data_uri, tmp_path):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        estimator(sdk, raising_script(tmp_path), role="arn:aws:iam::123456789012:role/NoSuchRole").fit(
            {"train": data_uri})
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "Could not assume role arn:aws:iam::123456789012:role/NoSuchRole" in str(caught.value)
    still_serving(twin)


def test_an_image_the_twin_cannot_build_fails_the_job(sdk, twin, data_uri, tmp_path):
    from sagemaker.exceptions import UnexpectedStatusException

    image = "111122223333.dkr.ecr.us-east-1.amazonaws.com/my-own-trainer:latest"
    with pytest.raises(UnexpectedStatusException) as caught:
        estimator(sdk, raising_script(tmp_path), image_uri=image).fit({"train": data_uri})
    assert "cannot run image" in str(caught.value) and "my-own-trainer" in str(caught.value)
    still_serving(twin)


def hf_model(sdk, model_data: str):
    from sagemaker.huggingface import HuggingFaceModel

    return HuggingFaceModel(model_data=model_data, role=sdk["role"], sagemaker_session=sdk["session"], **VERSIONS)


def test_a_model_archive_that_is_not_one_fails_the_endpoint(sdk, twin, tmp_path):
    from sagemaker.exceptions import UnexpectedStatusException

    junk = tmp_path / "model.tar.gz"
    junk.write_bytes(b"this is not a tar.gz archive")
    uri = sdk["session"].upload_data(str(junk), key_prefix="twin-tests/junk-model")
    with pytest.raises(UnexpectedStatusException) as caught:
        hf_model(sdk, uri).deploy(1, "ml.g4dn.xlarge")
    assert "Please ensure that the object located at the URL is a valid tar.gz archive" in str(caught.value)
    still_serving(twin)


@pytest.mark.slow
def test_an_endpoint_answers_and_model_errors_keep_the_services_shape(sdk, twin, twin_since, trained_tiny):
    from botocore.exceptions import ClientError

    from sagetwin.emulation.artifacts import local_path

    uri = sdk["session"].upload_data(str(local_path(trained_tiny.model_data, "model")), key_prefix="twin-tests/good")
    predictor = hf_model(sdk, uri).deploy(1, "ml.g4dn.xlarge")
    try:
        answer = predictor.predict({"inputs": "a wonderful film"})
        assert set(answer[0]) == {"label", "score"}
        with pytest.raises(ClientError) as caught:
            predictor.predict({"no_inputs_key": 1})
        error = caught.value.response
        assert error["Error"]["Code"] == "ModelError"
        assert error["OriginalStatusCode"] == 400
        assert "Received client error (400) from primary with message" in error["Error"]["Message"]
    finally:
        predictor.delete_endpoint()
    status = twin.clients.sagemaker.list_endpoints()["Endpoints"]
    assert predictor.endpoint_name not in [e["EndpointName"] for e in status]
    assert not leftovers(twin_since, twin)


# --- the twin answers like the service: the SDK sends it what it would send AWS ----------------


def sent_requests(output: str) -> list:
    line = next(line for line in output.splitlines() if line.startswith("REQUESTS "))
    return json.loads(line[len("REQUESTS "):])


def test_the_same_code_sends_the_same_create_requests_to_moto_alone_and_to_the_twin(tmp_path):
    import os
    import subprocess

    import boto3

    from sagetwin.aws.twin import HOOK_DIR, ROLE_NAME, TRUST_POLICY
    from sagetwin.emulation.processes import free_port

    port = free_port()
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        from sagetwin.emulation.processes import wait_until_healthy

        assert wait_until_healthy("127.0.0.1", port, timeout=60, path="/moto-api/")
        admin = boto3.session.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        admin.client("iam", endpoint_url=url).create_role(RoleName=ROLE_NAME,
                                                          AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))
        creds = admin.client("sts", endpoint_url=url).assume_role(
            RoleArn=f"arn:aws:iam::123456789012:role/{ROLE_NAME}", RoleSessionName="SageMaker")["Credentials"]
        env = {**os.environ, "AWS_ENDPOINT_URL": url, "SAGETWIN_AWS_ENDPOINT": url, "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
               "AWS_SESSION_TOKEN": creds["SessionToken"], "AWS_CONFIG_FILE": os.devnull,
               "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "PYTHONPATH": str(HOOK_DIR)}
        script = [sys.executable, str(REPO / "tests" / "sdk_workflow" / "create_requests.py"), str(TRAIN_SCRIPTS)]
        alone = subprocess.run(script, env=env, capture_output=True, text=True, timeout=300)
        assert alone.returncode == 0, alone.stderr[-3000:]
    finally:
        moto.terminate()
        moto.wait(timeout=30)
    twin = run_cli("exec", "--no-persist", "--", *script, timeout=300)
    assert twin.returncode == 0, twin.stderr[-3000:]
    to_moto, to_twin = sent_requests(alone.stdout), sent_requests(twin.stdout)
    assert [r["operation"] for r in to_twin] == ["CreateTrainingJob", "CreateModel", "CreateEndpointConfig",
                                                 "CreateEndpoint"]
    assert to_twin == to_moto


def test_an_empty_put_object_is_answered_at_once(twin):
    """botocore sends PutObject with no body as `Expect: 100-continue` with `Content-Length: 0`; the
    twin's server answered "100 Continue" and then waited for a body that never came (before: a
    read timeout, and sagetwin's own upload marker hung `fit` on `sagemaker` against the twin)."""
    import boto3
    import botocore.config

    s3 = boto3.client("s3", region_name="us-east-1",
                      config=botocore.config.Config(read_timeout=5, retries={"max_attempts": 1}))
    s3.create_bucket(Bucket="empty-put-test")
    s3.put_object(Bucket="empty-put-test", Key="marker", Body=b"")
    assert s3.get_object(Bucket="empty-put-test", Key="marker")["Body"].read() == b""


def test_stop_training_job_stops_the_run(sdk, twin, twin_since, data_uri, tmp_path):
    """Stopped while train.py runs (not before it starts: the job's process exists first), nothing
    of the job is left: the runner, the lifeline and train.py itself, found by the session marker."""
    started = tmp_path / "started"  # train.py says it runs: its own pid, outside the job's folders
    (tmp_path / "train.py").write_text(f"import os, pathlib, time\npathlib.Path({str(started)!r}).write_text("
                                       "str(os.getpid()))\ntime.sleep(600)\n")
    job = estimator(sdk, tmp_path)
    job.fit({"train": data_uri}, wait=False)
    name = job.latest_training_job.name
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert started.exists(), f"train.py did not start: {twin.jobs.jobs[name].status}"
    twin.clients.sagemaker.stop_training_job(TrainingJobName=name)
    while twin.jobs.jobs[name].status != "Stopped" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert twin.clients.sagemaker.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "Stopped"
    assert not leftovers(twin_since, twin)


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_sagetwin_aws_prints_the_environment_and_stops_on_ctrl_c(inherited: str, tmp_path: Path):
    """Ctrl-C stops it and it cleans up, also where it started with SIGINT ignored, as a background
    job of a non-interactive shell (`nohup sagetwin aws &`, some CI runners) starts."""
    import os
    import signal
    import subprocess
    import urllib.request

    disposition = {"default": signal.SIG_DFL, "ignored": signal.SIG_IGN}[inherited]
    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "-m", "sagetwin.cli", "aws", "--no-persist"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "SAGETWIN_HOME": str(home)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, disposition))
    exports: dict[str, str] = {}
    try:
        for line in read_until(proc.stdout, "export PYTHONPATH=", timeout=120):  # the last line it prints
            if line.startswith("export "):
                name, _, value = line[len("export "):].rstrip("\n").partition("=")
                exports[name] = value
        assert list((home / "aws" / "running").glob("*.json")), "the running twin's entry"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert code == 0 and "stopping the twin" in err, err
    assert not list((home / "aws" / "running").iterdir()) and not list((home / "aws" / "work").iterdir())
    url = exports["AWS_ENDPOINT_URL"]
    assert url.startswith("http://127.0.0.1:") and exports["SAGETWIN_AWS_ENDPOINT"] == url
    assert exports["AWS_ACCESS_KEY_ID"].startswith("ASIA")  # an assumed role's key, as in a SageMaker notebook
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)

