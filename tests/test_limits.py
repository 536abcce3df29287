"""SageMaker's name rules and limits hold on every backend, in the service's words, and a bad
name changes nothing on disk."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

import sagetwin
from sagetwin.core.limits import MAX_PAYLOAD_BYTES
from sagetwin.core.predictor import Predictor
from sagetwin.core.progress import SilentReporter
from tests.conftest import TRAIN_SCRIPTS


def job(**kwargs) -> sagetwin.HuggingFaceJob:
    return sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="process",
                                   reporter=SilentReporter(), **kwargs)


@pytest.fixture
def precious(tmp_path):
    """A folder outside the run folder that a bad name must never touch."""
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    return folder


def untouched(folder) -> bool:
    return folder.is_dir() and not folder.is_symlink() and (folder / "keep.txt").read_text() == "mine" \
        and [p.name for p in folder.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", "under_score", "dot.ted", "-lead", "x" * 64, ""])
def test_job_names_follow_the_service_pattern(name, sample_channels):
    with pytest.raises(sagetwin.ConfigurationError) as info:
        job().fit(sample_channels, job_name=name)
    assert "at 'trainingJobName' failed to satisfy constraint" in info.value.problem
    assert "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$" in info.value.problem


def test_a_channel_named_like_a_path_is_refused_before_the_disk_is_touched(precious, sample_channels):
    with pytest.raises(sagetwin.ConfigurationError, match="channelName' failed to satisfy constraint"):
        job().fit({str(precious): sample_channels["train"]})
    with pytest.raises(sagetwin.ConfigurationError, match="channelName' failed to satisfy constraint"):
        job().fit({"../" + precious.name: sample_channels["train"]})
    assert untouched(precious)


def test_channel_names_of_up_to_64_characters():
    spec = job().training_spec({"c" * 64: "/data", "with.dots-and_under": "/data"})
    assert len(spec.inputs) == 2
    with pytest.raises(sagetwin.ConfigurationError, match="length less than or equal to 64"):
        job().training_spec({"c" * 65: "/data"})


def test_hyperparameter_limits():
    job(hyperparameters={f"k{i}": i for i in range(100)})
    with pytest.raises(sagetwin.ConfigurationError, match="less than or equal to 100"):
        job(hyperparameters={f"k{i}": i for i in range(101)})
    with pytest.raises(sagetwin.ConfigurationError, match="less than or equal to 256"):
        job(hyperparameters={"k" * 257: 1})
    job(hyperparameters={"v": "x" * 2498})  # 2500 once JSON-encoded, as the SDK sends it
    with pytest.raises(sagetwin.ConfigurationError, match="less than or equal to 2500"):
        job(hyperparameters={"v": "x" * 2499})


@pytest.mark.parametrize("name", ["../../model", "ep/../../x", "ep.1"])
def test_endpoint_names_follow_the_service_pattern(name, tmp_path, monkeypatch):
    """Refused before the disk is touched. The folder a bad name would reach is a sentinel: before,
    ``<work dir>/endpoints/<name>/model`` was emptied and the model unpacked over it, so
    ``../../model`` reached a folder beside the work dir (the model is real, so only the name
    check stands between them)."""
    home = tmp_path / "home"
    monkeypatch.setenv("SAGETWIN_HOME", str(home))  # the process backend's work dir
    model = tmp_path / "archive" / "model.tar.gz"
    model.parent.mkdir()
    with tarfile.open(model, "w:gz") as tar:
        tar.add(TRAIN_SCRIPTS / "train.py", arcname="config.json")  # any file: the archive is not empty
    sentinel = Path(os.path.normpath(home / "endpoints" / name)) / "model"
    sentinel.mkdir(parents=True)
    (sentinel / "keep.txt").write_text("mine")
    home.mkdir(exist_ok=True)  # made by any first use of sagetwin, a good name's deploy included
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(sagetwin.ConfigurationError, match="at 'endpointName' failed to satisfy constraint"):
        job().deploy(endpoint_name=name, model_data=str(model))
    assert untouched(sentinel)
    assert sorted(tmp_path.rglob("*")) == before  # nothing made or removed, in the work dir or beside it


class Recording:
    name = "recording"

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        self.bodies.append(body)
        return b"[]", "application/json"

    def delete(self) -> None:
        pass


def test_payloads_over_6_mb_get_the_runtimes_413():
    endpoint = Recording()
    predictor = Predictor(endpoint, "recording")
    fits = {"inputs": "x" * (MAX_PAYLOAD_BYTES - 20)}
    assert len(json.dumps(fits)) <= MAX_PAYLOAD_BYTES
    predictor.predict(fits)
    with pytest.raises(sagetwin.InvocationError) as info:
        predictor.predict({"inputs": "x" * MAX_PAYLOAD_BYTES})
    assert info.value.status == 413 and "less than or equal to 6291456" in str(info.value)
    assert len(endpoint.bodies) == 1  # the oversize one was never sent


def test_the_local_work_folder_is_private_and_a_planted_one_is_refused(tmp_path):
    import os
    import stat

    from sagetwin.core.paths import private_dir

    mine = private_dir(tmp_path / "work")
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "planted").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(sagetwin.ConfigurationError, match="symlink or not yours"):
        private_dir(tmp_path / "planted")
    if os.getuid() == 0:  # as root, hand one to another user to show it is refused
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 12345, 12345)
        with pytest.raises(sagetwin.ConfigurationError, match="symlink or not yours"):
            private_dir(theirs)


def test_sagetwins_folders_are_private_and_open_ones_of_earlier_versions_are_tightened(tmp_path, monkeypatch):
    """Under a 022 umask, the home and each folder sagetwin makes in it are 0700, and a folder an
    earlier version left 0755 is tightened when next used; a symlink (a cache moved to a bigger
    disk) is left as it is."""
    import os
    import stat

    from sagetwin.core.paths import home_dir, home_folder, private_folders

    home = tmp_path / "home"
    monkeypatch.setenv("SAGETWIN_HOME", str(home))
    umask = os.umask(0o022)
    try:
        (home / "runs").mkdir(parents=True)  # 0755, as earlier versions made them
        (home / "unpacked-models").mkdir()
        (tmp_path / "bigger-disk").mkdir()
        (home / "envs").symlink_to(tmp_path / "bigger-disk", target_is_directory=True)
        assert stat.S_IMODE(home.stat().st_mode) == 0o755
        made = [home_dir(), home_folder("runs"), home_folder("data"), home_folder("pip-cache", "3.11"),
                private_folders(home, "unpacked-models"), private_folders(tmp_path / "work", "endpoints", "one"),
                home / "pip-cache", tmp_path / "work" / "endpoints"]
        home_folder("envs")
    finally:
        os.umask(umask)
    assert {path: oct(stat.S_IMODE(path.stat().st_mode)) for path in made} == {path: "0o700" for path in made}
    assert stat.S_IMODE((tmp_path / "bigger-disk").stat().st_mode) == 0o755


def test_a_job_name_that_already_ran_is_refused_as_sagemaker_refuses_it(trained_tiny, sample_channels):
    with pytest.raises(sagetwin.ConfigurationError, match="Training job names must be unique"):
        job().fit(sample_channels, job_name=trained_tiny.job_name)
