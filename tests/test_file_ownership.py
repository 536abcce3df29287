"""What local runs leave in the user's folders is the user's, the SDK's work folders go, and a lost engine is named.

Unit tests with a stand-in for Docker: the uid cases (non-root, rootless) cannot be reached as
root on this machine, so the runner records what would have been run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sagetwin.backends.local.containers import give_back_to_user, not_owned_by, owner_of
from sagetwin.backends.local.docker import engine_is_rootless
from sagetwin.backends.local.sdk_folders import reap_orphaned_folders, remove_folders_of_run, run_root
from sagetwin.core.errors import SagetwinError


class FakeDocker:
    def __init__(self, *, rootless: bool, chown_code: int = 0) -> None:
        self.rootless, self.chown_code, self.calls = rootless, chown_code, []

    def __call__(self, cmd: list[str], timeout: float | None = 10) -> subprocess.CompletedProcess:
        self.calls.append(cmd)
        if cmd[:2] == ["docker", "info"]:
            options = '["name=seccomp,profile=default"' + (',"name=rootless"' if self.rootless else "") + "]"
            return subprocess.CompletedProcess(cmd, 0, options, "")
        said = "chown: permission denied" if self.chown_code else ""
        return subprocess.CompletedProcess(cmd, self.chown_code, "", said)


@pytest.fixture
def as_user(monkeypatch):
    """Pretend to be uid/gid 4242: the test files are created as root, so they are 'not yours'."""
    monkeypatch.setattr(os, "getuid", lambda: 4242)
    monkeypatch.setattr(os, "getgid", lambda: 4242)


def test_rootless_docker_is_detected_from_the_engines_security_options():
    assert engine_is_rootless(FakeDocker(rootless=True)) is True
    assert engine_is_rootless(FakeDocker(rootless=False)) is False


def test_under_rootless_docker_nothing_is_chowned(tmp_path: Path, as_user, monkeypatch):
    """Rootless: container root is the user already; a chown inside would hand files to a subordinate uid."""
    fake = FakeDocker(rootless=True)
    give_back_to_user(tmp_path, "some-image", run=fake)
    assert [c for c in fake.calls if c[:2] == ["docker", "run"]] == []


def test_a_failed_chown_is_an_error_naming_the_folder_and_the_fix(tmp_path: Path, as_user):
    """Before: the chown's failure was ignored and root-owned files stayed in the user's folder."""
    fake = FakeDocker(rootless=False, chown_code=1)
    with pytest.raises(SagetwinError) as info:
        give_back_to_user(tmp_path, "some-image", run=fake)
    assert str(tmp_path) in info.value.problem and "permission denied" in info.value.problem
    assert f"sudo chown -R 4242:4242 {tmp_path}" in info.value.fix
    chown = [c for c in fake.calls if c[:2] == ["docker", "run"]][0]
    assert chown[-3:] == ["-R", "4242:4242", "/target"] and "--network" in chown


def test_files_still_not_the_users_after_a_chown_are_named(tmp_path: Path, as_user):
    (tmp_path / "model").mkdir()
    fake = FakeDocker(rootless=False)  # "succeeds" without changing anything: the files stay root's
    with pytest.raises(SagetwinError, match="still not yours"):
        give_back_to_user(tmp_path, "some-image", run=fake)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another uid needs root")
def test_not_owned_by_finds_a_foreign_file_deep_down(tmp_path: Path):
    deep = tmp_path / "a" / "b" / "weights.bin"
    deep.parent.mkdir(parents=True)
    deep.write_bytes(b"x")
    assert not_owned_by(tmp_path, os.getuid()) == []
    os.chown(deep, 12345, 12345)
    assert not_owned_by(tmp_path, os.getuid()) == [str(deep)]


def test_each_run_has_its_own_sdk_root_and_only_it_is_removed(tmp_path: Path):
    ours, theirs = run_root(tmp_path, "0123456789abcdef"), run_root(tmp_path, "fedcba9876543210")
    for root in (ours, theirs):  # what the SDK makes inside: its compose folder and the channels' folder
        (root / "tmpab12" / "model").mkdir(parents=True)
        (root / "tmpcd34" / "train").mkdir(parents=True)
    assert oct(ours.stat().st_mode & 0o777) == "0o700"
    remove_folders_of_run(tmp_path, "0123456789abcdef", "some-image")
    assert not ours.exists() and (theirs / "tmpcd34" / "train").is_dir()


def test_folders_of_killed_runs_are_reaped_and_live_ones_kept(tmp_path: Path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = owner_of(os.getpid()).split()[0]
    gone, alive, elsewhere = (run_root(tmp_path, name) for name in ("aaaa", "bbbb", "cccc"))
    (gone / "owner").write_text(f"{host} {dead.pid} 1")
    (elsewhere / "owner").write_text("another-host 1 1")  # a machine sharing the engine: not ours to judge
    (gone / "tmpcd34" / "train").mkdir(parents=True)
    assert reap_orphaned_folders(tmp_path) == 1
    assert not gone.exists() and alive.exists() and elsewhere.exists()


def test_give_back_is_skipped_for_root(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 0)
    fake = FakeDocker(rootless=False, chown_code=1)
    give_back_to_user(tmp_path, "some-image", run=fake)  # root owns what root's containers write: nothing to do
    assert fake.calls == []


ENGINE_GONE = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"


def docker_that_stops(folder: Path) -> Path:
    """A ``docker`` CLI stand-in (put first on PATH) that answers as an idle engine until the file
    it returns exists, and as a stopped engine after: every Docker call the backend makes sees it."""
    stopped = folder / "engine-stopped"
    (folder / "docker").write_text(f"#!/bin/sh\nif [ -e {stopped} ]; then echo '{ENGINE_GONE}' >&2; exit 1; fi\n"
                                   "[ \"$1\" = info ] && echo 26.1.5\nexit 0\n")
    (folder / "docker").chmod(0o755)
    return stopped


def test_a_run_that_fails_because_the_engine_went_away_says_so(tmp_path: Path, monkeypatch):
    """docs/reliability.md row 21, through the backend's own path (``LocalBackend._run_training``):
    the engine stops while the SDK runs the job, the SDK fails as it does then ("Failed to run:
    docker-compose ..."), and the run names the engine and the way back instead of blaming the
    script. While the engine answers, the same SDK failure stays the run's own."""
    from types import SimpleNamespace

    from sagetwin.backends.local.backend import LocalBackend
    from sagetwin.core.errors import BackendUnavailableError, TrainingError

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stopped = docker_that_stops(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    sdk_failure = RuntimeError("Failed to run: ['docker-compose', '-f', 'docker-compose.yaml', 'up', "
                               "'--build', '--abort-on-container-exit'], Process exited with code: 1")

    def fit_while_the_engine_stops(*args, **kwargs):
        stopped.touch()  # dockerd killed mid-run
        raise sdk_failure

    backend = LocalBackend(work_dir=str(tmp_path / "work"))
    estimator = SimpleNamespace(fit=fit_while_the_engine_stops)
    with pytest.raises(BackendUnavailableError) as info:
        backend._run_training(estimator, {}, "job-1", "0123456789abcdef", "some-image", tmp_path / "out")
    assert "the Docker engine stopped answering during training job job-1" in info.value.problem
    assert "Cannot connect to the Docker daemon" in info.value.problem and "scripts/docker-engine.sh" in info.value.fix
    assert info.value.__cause__ is sdk_failure

    stopped.unlink()  # the engine answers: the script's failure is reported as the script's
    estimator = SimpleNamespace(fit=lambda *args, **kwargs: (_ for _ in ()).throw(sdk_failure))
    with pytest.raises(TrainingError, match="training job job-2 failed in Docker"):
        backend._run_training(estimator, {}, "job-2", "fedcba9876543210", "some-image", tmp_path / "out")


def test_after_a_run_every_cleanup_step_is_tried_and_the_runs_own_error_stays_the_one_raised(tmp_path, monkeypatch):
    from sagetwin.backends.local import sdk_folders

    done: list[str] = []

    def cannot_remove(containers):
        done.append("containers")
        raise SagetwinError("container(s) abc could not be removed: engine gone.", "start the engine.")

    monkeypatch.setattr(sdk_folders, "remove_containers", cannot_remove)
    monkeypatch.setattr(sdk_folders, "give_back_to_user", lambda path, image: done.append("chown"))
    root = run_root(tmp_path, "0123456789abcdef")
    interrupted = KeyboardInterrupt()
    sdk_folders.tidy_after_run(tmp_path, "0123456789abcdef", "img", containers={"abc"}, output=tmp_path,
                               failure=interrupted)
    assert done == ["containers", "chown", "chown"] and not root.exists()  # the later steps still ran
    assert "could not be removed: engine gone" in interrupted.__notes__[0]  # Ctrl-C stays Ctrl-C (exit 130)
    with pytest.raises(SagetwinError, match="could not be removed"):  # a run that went well: the problem itself
        sdk_folders.tidy_after_run(tmp_path, "0123456789abcdef", "img", containers={"abc"}, output=tmp_path,
                                   failure=None)
