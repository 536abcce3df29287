"""``sagetwin.HuggingFaceModel``: deploy a model without a training job, from ``model_data`` or from
``env={"HF_MODEL_ID": ..., "HF_TASK": ...}``, on process and local for real, and through the SDK's
own HuggingFaceModel on the sagemaker backend (moto)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import boto3
import pytest

import sagetwin
from sagetwin.core.progress import SilentReporter
from sagetwin.emulation.model_sources import HUB_ONLY, served_model
from tests.aws import REGION
from tests.test_local_backend import no_leftover_containers, require_docker  # noqa: F401 (a fixture)
from tests.test_sagemaker_backend import aws, moto_server  # noqa: F401 (fixtures)

SENTENCES = ["I loved every minute of it.", "A dull, lifeless mess."]


@pytest.fixture(scope="module")
def model_folder(trained_tiny, tmp_path_factory) -> Path:
    """The trained tiny model as a plain folder, as save_pretrained() writes one."""
    folder = tmp_path_factory.mktemp("saved-model")
    with tarfile.open(trained_tiny.model_data.removeprefix("file://"), "r:gz") as tar:
        tar.extractall(folder, filter="data")
    return folder


@pytest.fixture
def docker_available() -> None:
    require_docker()  # before no_leftover_containers asks Docker for its containers


def predictions(model: sagetwin.HuggingFaceModel) -> list:
    with model.deploy() as predictor:
        answer = predictor.predict({"inputs": SENTENCES})
    assert predictor.deleted
    return answer


@pytest.mark.slow
def test_process_serves_model_data_and_an_hf_model_id_folder_alike(trained_tiny, model_folder,
                                                                   no_leftover_processes):
    from_archive = predictions(sagetwin.HuggingFaceModel(model_data=trained_tiny.model_data, backend="process",
                                                         reporter=SilentReporter()))
    from_folder = predictions(sagetwin.HuggingFaceModel(
        env={"HF_MODEL_ID": str(model_folder), "HF_TASK": "text-classification"}, backend="process",
        reporter=SilentReporter()))
    assert [set(item) for item in from_archive] == [{"label", "score"}] * 2
    assert {item["label"] for item in from_archive} <= {"NEGATIVE", "POSITIVE"}
    assert from_folder == from_archive  # the same weights give the same answers, whichever way they came


def test_an_hf_model_id_folder_is_packed_once_and_the_hub_variables_are_dropped(model_folder):
    env = {"HF_MODEL_ID": str(model_folder), "HF_MODEL_REVISION": "main", "HF_TASK": "text-classification"}
    said: list[str] = []
    archive, served_env = served_model("file:///nowhere/model.tar.gz", env, said.append)
    again, _ = served_model(None, env)
    assert archive == again and archive.is_file()
    with tarfile.open(archive) as tar:
        assert {"config.json", "model.safetensors"} <= set(tar.getnames())
    assert served_env == {"HF_TASK": "text-classification"} and not set(served_env) & set(HUB_ONLY)
    assert "ignores model_data" in said[0]  # HF_MODEL_ID wins, as in the inference toolkit


@pytest.mark.slow
def test_a_hub_id_is_fetched_as_the_container_would_and_its_cache_links_are_followed(
        trained_tiny, model_folder, tmp_path, monkeypatch, no_leftover_processes):
    """The Hub is not reachable here: a stand-in for ``snapshot_download`` returns a folder shaped like
    the Hugging Face cache (files are symlinks into a blob store), from the same weights."""
    import huggingface_hub

    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "abc123"
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    for item in model_folder.iterdir():
        if item.is_file():
            (blobs / item.name).write_bytes(item.read_bytes())
            (snapshot / item.name).symlink_to(blobs / item.name)
    asked = {}

    def snapshot_download(repo_id, **kwargs):
        asked.update(repo_id=repo_id, **kwargs)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    from_hub = predictions(sagetwin.HuggingFaceModel(
        env={"HF_MODEL_ID": "someone/tiny-sentiment", "HF_TASK": "text-classification", "HF_API_TOKEN": "hf_x"},
        backend="process", reporter=SilentReporter()))
    from_archive = predictions(sagetwin.HuggingFaceModel(model_data=trained_tiny.model_data, backend="process",
                                                         reporter=SilentReporter()))
    assert asked["repo_id"] == "someone/tiny-sentiment" and asked["token"] == "hf_x"
    assert "*.h5" in asked["ignore_patterns"]  # other frameworks' weights are not fetched, as in the toolkit
    assert from_hub == from_archive


def test_a_model_needs_model_data_or_hf_model_id():
    with pytest.raises(sagetwin.ConfigurationError, match="neither model_data nor env\\['HF_MODEL_ID'\\]"):
        sagetwin.HuggingFaceModel(env={"HF_TASK": "text-classification"}, backend="process")


def test_a_hub_id_the_hub_cannot_give_is_a_clear_error(monkeypatch, no_leftover_processes):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no request leaves this machine
    model = sagetwin.HuggingFaceModel(env={"HF_MODEL_ID": "someone/no-such-model", "HF_TASK": "text-classification"},
                                      backend="process", reporter=SilentReporter())
    with pytest.raises(sagetwin.ConfigurationError) as info:
        model.deploy()
    text = info.value.render()
    assert "someone/no-such-model" in text and "HF_HUB_OFFLINE" in text and "save_pretrained" in text


def test_a_folder_that_is_not_a_saved_model_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    model = sagetwin.HuggingFaceModel(env={"HF_MODEL_ID": str(tmp_path)}, backend="process",
                                      reporter=SilentReporter())
    with pytest.raises(sagetwin.ConfigurationError, match="no config.json"):
        model.deploy()


@pytest.mark.docker
@pytest.mark.slow
def test_local_serves_model_data_and_an_hf_model_id_folder(docker_available, trained_tiny, model_folder,
                                                           no_leftover_containers):  # noqa: F811
    offline = predictions(sagetwin.HuggingFaceModel(model_data=trained_tiny.model_data, backend="process",
                                                    reporter=SilentReporter()))
    from_archive = predictions(sagetwin.HuggingFaceModel(model_data=trained_tiny.model_data, backend="local",
                                                         reporter=SilentReporter()))
    from_folder = predictions(sagetwin.HuggingFaceModel(
        env={"HF_MODEL_ID": str(model_folder), "HF_TASK": "text-classification"}, backend="local",
        reporter=SilentReporter()))
    assert [item["label"] for item in from_archive] == [item["label"] for item in offline]
    assert [item["label"] for item in from_folder] == [item["label"] for item in offline]
    for got, want in zip(from_folder + from_archive, offline + offline, strict=True):
        assert got["score"] == pytest.approx(want["score"], abs=1e-3)


@pytest.mark.slow
def test_sagemaker_gets_the_sdks_own_model_from_an_archive_a_folder_or_a_hub_id(
        aws, trained_tiny, model_folder):  # noqa: F811
    client = boto3.client("sagemaker", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    cases = {
        "archive": {"model_data": trained_tiny.model_data},
        "folder": {"env": {"HF_MODEL_ID": str(model_folder), "HF_TASK": "text-classification"}},
        "hub": {"env": {"HF_MODEL_ID": "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
                        "HF_TASK": "text-classification"}},
    }
    containers = {}
    for case, kwargs in cases.items():
        predictor = sagetwin.HuggingFaceModel(**kwargs, backend="sagemaker", reporter=SilentReporter()).deploy()
        try:
            assert client.describe_endpoint(EndpointName=predictor.endpoint_name)["EndpointStatus"] == "InService"
            containers[case] = client.describe_model(ModelName=predictor.endpoint_name)["PrimaryContainer"]
        finally:
            predictor.delete_endpoint()
    for case in ("archive", "folder"):  # a file here reaches SageMaker only through S3
        uri = containers[case]["ModelDataUrl"]
        bucket, key = uri[len("s3://"):].split("/", 1)
        assert uri.endswith("/model.tar.gz") and s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
    assert "HF_MODEL_ID" not in containers["folder"].get("Environment", {})
    assert containers["folder"]["Environment"]["HF_TASK"] == "text-classification"
    assert "ModelDataUrl" not in containers["hub"]  # the container downloads a Hub model itself
    assert containers["hub"]["Environment"]["HF_MODEL_ID"] == cases["hub"]["env"]["HF_MODEL_ID"]
    assert client.list_endpoints()["Endpoints"] == []
