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


def test_a_run_that_fails_because_the_engine_went_away_says_so():
    """By hand (docs/reliability.md): dockerd killed while a container trains. Before, the run blamed
    the script ("fix the error in the log below"); the engine is named now, with the way back."""
    from sagetwin.backends.local.docker import engine_lost
    from sagetwin.core.errors import BackendUnavailableError

    def engine_down(cmd, timeout=10):
        return subprocess.CompletedProcess(cmd, 1, "", "Cannot connect to the Docker daemon at unix:///var/run/"
                                                       "docker.sock. Is the docker daemon running?")

    error = engine_lost("training job job-1", run=engine_down)
    assert isinstance(error, BackendUnavailableError)
    assert "the Docker engine stopped answering during training job job-1" in error.problem
    assert "Cannot connect to the Docker daemon" in error.problem and "scripts/docker-engine.sh" in error.fix
    assert engine_lost("training job job-1", run=lambda cmd, timeout=10: subprocess.CompletedProcess(
        cmd, 0, "26.1.5", "")) is None  # the engine answers: the run's own failure stands


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
