"""The sagemaker backend against moto's server on 127.0.0.1: the real SDK code, no real AWS.

moto records every request as SageMaker would receive it, marks jobs Completed and endpoints
InService at once, writes no model artifact and answers InvokeEndpoint from a queue of
canned results. Where a test needs what moto does not do, it fills the gap explicitly and
says so; nothing here pretends to be a real AWS result.
"""

from __future__ import annotations

import json
import os

import boto3
import pytest

import sagetwin
from sagetwin.core import plugins
from sagetwin.core.progress import SilentReporter
from tests.aws import ACCOUNT, BUCKET, REGION, ROLE, aws_env, loopback_only, queue_invoke_results
from tests.conftest import TRAIN_SCRIPTS, run_cli


@pytest.fixture(scope="module")
def moto_server():
    from moto.server import ThreadedMotoServer

    from sagetwin.emulation.processes import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch, tmp_path):
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    env = aws_env(moto_server, tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with loopback_only(monkeypatch) as attempts:
        yield {"endpoint": moto_server, "env": env, "attempts": attempts}
    assert not attempts, f"something tried to leave 127.0.0.1: {attempts}"


def sm_client():
    return boto3.client("sagemaker", region_name=REGION)


def expected_image(scope: str, instance_type: str) -> str:
    from sagemaker import image_uris

    from sagetwin.core.versions import default_stack

    stack = default_stack()
    return image_uris.retrieve("huggingface", REGION, version=stack.transformers,
                               base_framework_version=f"pytorch{stack.pytorch}", py_version=stack.py,
                               instance_type=instance_type, image_scope=scope)


class MotoGapFiller:
    """Fills, explicitly, what moto does not do: write the model artifact, answer a prediction.

    After training it uploads a model.tar.gz (trained for real by the process backend) to the S3
    location SageMaker would have written; when the endpoint exists it queues ``canned`` as moto's
    InvokeEndpoint answer. Nothing computes that answer: it proves only that the service's answer
    reaches the caller as sent.
    """

    def __init__(self, moto_endpoint: str, model_tar: str, canned: object) -> None:
        self.moto_endpoint = moto_endpoint
        self.model_tar = model_tar
        self.canned = canned

    @sagetwin.hookimpl
    def sagetwin_training_finished(self, spec, result, error):
        if result is not None and result.backend == "sagemaker":
            bucket, key = result.model_data[len("s3://"):].split("/", 1)
            boto3.client("s3", region_name=REGION).upload_file(self.model_tar, bucket, key)

    @sagetwin.hookimpl
    def sagetwin_endpoint_created(self, endpoint, backend):
        if backend == "sagemaker":
            queue_invoke_results(self.moto_endpoint, [self.canned])


def user_workflow(backend: str, channels: dict[str, str], hyperparameters: dict) -> dict:
    """A person's own code: identical for every backend but for the name."""
    job = sagetwin.HuggingFaceJob(entry_point="train.py", source_dir=str(TRAIN_SCRIPTS),
                                  hyperparameters=hyperparameters, backend=backend, reporter=SilentReporter())
    training = job.fit(channels)
    with job.deploy() as predictor:
        prediction = predictor.predict({"inputs": "I loved every minute of it."})
        endpoint_name = predictor.endpoint_name
    return {"training": training, "prediction": prediction, "endpoint": endpoint_name}


@pytest.mark.slow
def test_the_workflow_on_sagemaker_sends_what_sagemaker_receives(aws, sample_channels, tiny_hyperparameters,
                                                                 trained_tiny, no_leftover_processes):
    """The person's code on `sagemaker` against moto: checked is what moto really holds, the
    requests (job, data, tags, endpoint) and their removal. moto computes no prediction (its
    InvokeEndpoint answers a queued canned result), so the answer is only checked to come back as
    queued; the prediction is compared with `process` against the twin, whose endpoint serves the
    trained model: test_sagemaker_via_twin.py::test_same_workflow_on_process_and_sagemaker."""
    canned = [{"label": "canned-by-the-test", "score": 0.5}]
    filler = MotoGapFiller(aws["endpoint"], trained_tiny.model_data[len("file://"):], canned)
    plugins.get_plugin_manager().register(filler, name="moto-gap-filler")
    try:
        cloud = user_workflow("sagemaker", sample_channels, tiny_hyperparameters)
    finally:
        plugins.get_plugin_manager().unregister(filler)

    assert cloud["training"].backend == "sagemaker" and cloud["training"].model_data.startswith("s3://")
    assert cloud["prediction"] == canned  # moto's queued answer, as it was sent: nothing more to compare

    client = sm_client()
    job = client.describe_training_job(TrainingJobName=cloud["training"].job_name)
    assert job["ResourceConfig"]["InstanceType"] == "ml.p3.2xlarge"
    assert job["ResourceConfig"]["InstanceCount"] == 1
    assert job["AlgorithmSpecification"]["TrainingImage"] == expected_image("training", "ml.p3.2xlarge")
    assert job["RoleArn"] == ROLE
    hps = job["HyperParameters"]
    # SageMaker receives every value JSON-encoded, plus the SDK's own sagemaker_* keys
    assert hps["epochs"] == "1" and hps["max_steps"] == "4"
    assert hps["model_name"] == '"/opt/ml/input/data/model"'
    assert hps["sagemaker_program"] == '"train.py"'
    assert json.loads(hps["sagemaker_submit_directory"]).startswith(f"s3://{BUCKET}/")
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert set(channels) == {"train", "test", "model"}
    assert all(uri.startswith(f"s3://{BUCKET}/sagetwin/inputs/") for uri in channels.values())
    tags = {t["Key"]: t["Value"] for t in client.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]}
    assert tags["sagetwin:managed"] == "true" and tags["sagetwin:run"] == cloud["training"].job_name
    # the uploaded dataset is the prepared one: same files as the local channel
    s3 = boto3.client("s3", region_name=REGION)
    prefix = channels["train"][len(f"s3://{BUCKET}/"):]
    keys = {o["Key"][len(prefix) + 1:] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/")["Contents"]}
    assert keys == {p for p in os.listdir(sample_channels["train"])}

    # the endpoint was created on ml.g4dn.xlarge with the inference DLC, and is gone now
    assert client.list_endpoints()["Endpoints"] == []
    assert client.list_endpoint_configs()["EndpointConfigs"] == []
    assert client.list_models()["Models"] == []


@pytest.mark.slow
def test_deploy_records_instance_image_and_tags(aws, trained_tiny):
    s3 = boto3.client("s3", region_name=REGION)
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="sagemaker", reporter=SilentReporter())
    # a model trained offline deploys to the cloud as it is: its archive is uploaded first
    predictor = job.deploy(model_data=trained_tiny.model_data)
    try:
        client = sm_client()
        endpoint = client.describe_endpoint(EndpointName=predictor.endpoint_name)
        config = client.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        variant = config["ProductionVariants"][0]
        assert variant["InstanceType"] == "ml.g4dn.xlarge" and variant["InitialInstanceCount"] == 1
        model = client.describe_model(ModelName=predictor.endpoint_name)
        assert model["PrimaryContainer"]["Image"] == expected_image("inference", "ml.g4dn.xlarge")
        model_data = model["PrimaryContainer"]["ModelDataUrl"]
        assert model_data.startswith(f"s3://{BUCKET}/sagetwin/models/") and model_data.endswith("/model.tar.gz")
        bucket, key = model_data[len("s3://"):].split("/", 1)
        assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
        tags = {t["Key"]: t["Value"] for t in client.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]}
        assert tags["sagetwin:managed"] == "true"
        listed = run_cli("endpoints", "--json", env=aws["env"])
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert [(r["name"], r["hourly_usd"], r["instances"]) for r in rows] == [
            (predictor.endpoint_name, 0.736, ["1 x ml.g4dn.xlarge"])]
        deleted = run_cli("endpoints", "--delete", predictor.endpoint_name, "--yes", "--json", env=aws["env"])
        assert deleted.returncode == 0, deleted.stderr
        assert json.loads(deleted.stdout)[0]["action"] == "deleted"
        assert client.list_endpoints()["Endpoints"] == []
    finally:
        if not predictor.deleted:
            predictor.delete_endpoint()


def test_cost_plan_before_launch(aws):
    from sagetwin.backends.sagemaker.backend import SageMakerBackend

    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="sagemaker", reporter=SilentReporter())
    lines = [line.render() for line in SageMakerBackend().launch_plan(job.training_spec({}), None)]
    assert lines == [
        "training: 1 x ml.p3.2xlarge at $3.825/h, at most 24.0 h (max_run) -> worst case $91.80",
        "endpoint: 1 x ml.g4dn.xlarge at $0.736/h until deleted ($0.736 for every hour it stays up)",
    ]


def test_cli_refuses_to_launch_without_confirmation(aws):
    before = sm_client().list_training_jobs()["TrainingJobSummaries"]
    result = run_cli("run", "--backend", "sagemaker", "--model", "tiny", "--train-size", "16", "--test-size", "8",
                     env=aws["env"])
    assert result.returncode == 2
    assert "launches billed resources" in result.stderr and "--yes" in result.stderr
    assert "ml.p3.2xlarge at $3.825/h" in result.stderr
    assert sm_client().list_training_jobs()["TrainingJobSummaries"] == before  # nothing was launched


def test_missing_credentials_region_and_role_are_clear(aws, monkeypatch, tmp_path):
    from sagetwin.backends.sagemaker.backend import SageMakerBackend

    monkeypatch.delenv("SAGETWIN_ROLE")
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="sagemaker", reporter=SilentReporter())
    with pytest.raises(sagetwin.ConfigurationError, match="no IAM role") as info:
        job.fit({})
    assert "SAGETWIN_ROLE" in info.value.fix

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    availability = SageMakerBackend.availability()
    assert not availability.usable and "credentials" in availability.reason
    with pytest.raises(sagetwin.BackendUnavailableError, match="cannot run here: no AWS credentials found"):
        sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="sagemaker",
                                reporter=SilentReporter()).fit({})

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    assert "region" in SageMakerBackend.availability().reason


@pytest.mark.slow
def test_cli_run_against_moto(aws, tmp_path):
    # moto computes nothing: queue the answer its InvokeEndpoint will return (a canned result)
    canned = [{"label": "POSITIVE", "score": 0.5}]
    queue_invoke_results(aws["endpoint"], [canned])
    result = run_cli("run", "--backend", "sagemaker", "--model", "tiny", "--yes", "--json", "--train-size", "32",
                     "--test-size", "16", env=aws["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout)
    assert data["backend"] == "sagemaker"
    assert data["prediction"] == canned
    client = sm_client()
    described = client.describe_training_job(TrainingJobName=data["training"]["job_name"])
    assert described["TrainingJobStatus"] == "Completed"
    assert data["endpoint"]["deleted"] is True
    assert data["endpoint"]["name"] not in [e["EndpointName"] for e in client.list_endpoints()["Endpoints"]]


def test_local_inputs_are_uploaded_once(aws, tmp_path):
    from sagetwin.sagemaker_sdk import boto as _aws

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_text("same bytes")
    session = boto3.Session()
    _aws.ensure_bucket(session, BUCKET, ACCOUNT)
    said: list[str] = []
    first, uploaded = _aws.upload_once(session, folder, BUCKET, say=said.append)
    assert uploaded
    assert said[0] == f"uploading data: 1 file(s), 0.0 MB to {first}" and said[1].startswith("uploaded 0.0 MB in ")
    (folder / "a.txt").touch()  # a newer mtime alone does not mean new content
    assert _aws.upload_once(session, folder, BUCKET) == (first, False)
    (folder / "a.txt").write_text("new bytes")
    second, uploaded = _aws.upload_once(session, folder, BUCKET)
    assert uploaded and second != first


def test_dry_run_prints_the_exact_requests_and_sends_none(monkeypatch, tmp_path, capfd):
    # no credentials and no endpoint at all: a dry run must not need either
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("SAGETWIN_ROLE", ROLE)
    from sagetwin.cli import main

    capfd.readouterr()
    with loopback_only(monkeypatch) as attempts:  # in this process, so the guard sees every connection
        code = main(["run", "--backend", "sagemaker", "--model", "tiny", "--dry-run", "--train-size", "16",
                     "--test-size", "8"])
    out, err = capfd.readouterr()
    assert code == 0, err[-3000:]
    assert not attempts, attempts
    data = json.loads(out)
    assert [r["operation"] for r in data["requests"]] == ["CreateTrainingJob", "CreateModel",
                                                         "CreateEndpointConfig", "CreateEndpoint"]
    training = data["requests"][0]["request"]
    assert training["ResourceConfig"]["InstanceType"] == "ml.p3.2xlarge"
    assert training["AlgorithmSpecification"]["TrainingImage"] == expected_image("training", "ml.p3.2xlarge")
    assert training["RoleArn"] == ROLE and training["HyperParameters"]["sagemaker_program"] == '"train.py"'
    config = data["requests"][2]["request"]
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.g4dn.xlarge"
    assert data["plan"][0].startswith("training: 1 x ml.p3.2xlarge at $3.825/h")


def sent_training_requests(monkeypatch) -> list[dict]:
    """Every CreateTrainingJob the SDK sends in this test, as sent."""
    from botocore.client import BaseClient

    sent: list[dict] = []
    real = BaseClient._make_api_call

    def call(self, name, params):
        if name == "CreateTrainingJob":
            sent.append(json.loads(json.dumps(params, default=str)))
        return real(self, name, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call)
    return sent


def comparable(request: dict) -> dict:
    """A CreateTrainingJob less what names the job or where its files go (each estimator picks its
    own S3 prefix), which differ between any two jobs."""
    request = json.loads(json.dumps(request))
    request.pop("TrainingJobName")
    request.pop("OutputDataConfig")
    for config in ("DebugHookConfig", "ProfilerConfig"):
        request.get(config, {}).pop("S3OutputPath", None)
    for name in ("sagemaker_submit_directory", "sagemaker_job_name"):
        request["HyperParameters"].pop(name, None)
    return request


@pytest.mark.parametrize("versions", [("4.26", "1.13", "py39"), ("4.26.0", "1.13.1", "py39")], ids=["alias", "full"])
@pytest.mark.parametrize("hosts", [1, 2], ids=["one-host", "two-hosts-torch-distributed"])
def test_the_backend_and_the_sdks_own_estimator_send_the_same_training_request(aws, versions, hosts, tmp_path,
                                                                                monkeypatch):
    """A differential test against moto: the same arguments through the SDK's HuggingFace estimator
    and through sagetwin's sagemaker backend give the same CreateTrainingJob (image URI,
    hyperparameters, distribution, resources, stopping condition), less job name and S3 paths."""
    from sagemaker.huggingface import HuggingFace

    from sagetwin.sagemaker_sdk.boto import ensure_bucket, sagemaker_session

    transformers, pytorch, py = versions
    distribution = {"torch_distributed": {"enabled": True}} if hosts > 1 else None
    if distribution and pytorch == "1.13":
        pytest.skip("the SDK refuses torch_distributed for the alias 1.13 (test_distributed_training checks that)")
    tag = f"{transformers.replace('.', '-')}-{hosts}"
    (tmp_path / "train.py").write_text("print('hello')\n")
    boto = boto3.Session(region_name=REGION)
    ensure_bucket(boto, BUCKET, ACCOUNT)
    sent = sent_training_requests(monkeypatch)
    arguments = {"instance_type": "ml.p3.2xlarge", "instance_count": hosts, "role": ROLE,
                 "transformers_version": transformers, "pytorch_version": pytorch, "py_version": py,
                 "hyperparameters": {"epochs": 1, "model_name": "distilbert-base-uncased"},
                 **({"distribution": distribution} if distribution else {})}
    HuggingFace(entry_point="train.py", source_dir=str(tmp_path), sagemaker_session=sagemaker_session(boto, BUCKET),
                **arguments).fit(job_name=f"sdk-own-{tag}", wait=False)
    job = sagetwin.HuggingFaceJob("train.py", source_dir=tmp_path, backend="sagemaker", reporter=SilentReporter(),
                                  **arguments)
    job.fit(job_name=f"sagetwin-{tag}")
    assert len(sent) == 2, [r["TrainingJobName"] for r in sent]
    sdk_own, ours = comparable(sent[0]), comparable(sent[1])
    # what sagetwin adds on purpose: tags to find what it started, and metric definitions for the curve
    assert [t["Key"] for t in ours.pop("Tags")] == ["sagetwin:managed", "sagetwin:run"] and "Tags" not in sdk_own
    assert ours["AlgorithmSpecification"].pop("MetricDefinitions") and \
        "MetricDefinitions" not in sdk_own["AlgorithmSpecification"]
    assert sdk_own == ours, {key: (sdk_own.get(key), ours.get(key)) for key in {*sdk_own, *ours}
                             if sdk_own.get(key) != ours.get(key)}
    image = sent[0]["AlgorithmSpecification"]["TrainingImage"]
    assert image.endswith(f":{pytorch}-transformers{transformers}-gpu-{py}-cu117-ubuntu20.04")
    if distribution:
        assert sent[0]["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"
