"""Image recipes and the choice of base, without Docker: the docker CLI is answered by stand-ins."""

from __future__ import annotations

import io
import subprocess

import pytest

from sagetwin.backends.local import images
from sagetwin.core.progress import StreamReporter


def test_a_configured_base_changes_the_image_tag_but_not_the_wheels(monkeypatch):
    monkeypatch.delenv("SAGETWIN_BASE_IMAGE", raising=False)
    debian = images.recipe("inference")
    monkeypatch.setenv("SAGETWIN_BASE_IMAGE", "registry.example.com/library/python:3.11-slim")
    slim = images.recipe("inference")
    assert slim.tag != debian.tag  # content-addressed: another base is another image
    assert slim.wheelhouse_key() == debian.wheelhouse_key()  # same requirements, same wheels
    assert slim.base_tag.startswith("sagetwin/base:python-3.11-slim-")
    assert debian.base_tag.startswith(f"sagetwin/base:{debian.suite}-")


@pytest.fixture
def docker_answers(monkeypatch):
    """Present images and pull results the stand-in docker CLI reports."""
    state = {"present": set(), "pullable": set(), "completed": []}

    def docker(*args, check=True, capture=True, timeout=None):
        ok = args[0] == "pull" and args[1] in state["pullable"]
        return subprocess.CompletedProcess(["docker", *args], 0 if ok else 1, "",
                                           "" if ok else "dial tcp: lookup registry: no such host")

    monkeypatch.setattr(images, "docker", docker)
    monkeypatch.setattr(images, "image_exists", lambda tag: tag in state["present"])
    monkeypatch.setattr(images, "complete_base", lambda rec, reporter: state["completed"].append(rec) or rec.base_tag)
    return state


def test_a_pullable_configured_base_is_completed_and_used(monkeypatch, docker_answers):
    monkeypatch.setenv("SAGETWIN_BASE_IMAGE", "python:3.11-slim")
    docker_answers["pullable"].add("python:3.11-slim")
    rec = images.recipe("inference")
    assert images.ensure_base(rec, StreamReporter(io.StringIO())) == rec.base_tag
    assert [r.configured_base for r in docker_answers["completed"]] == ["python:3.11-slim"]


def test_an_unpullable_configured_base_falls_back_to_debian(monkeypatch, docker_answers):
    monkeypatch.setenv("SAGETWIN_BASE_IMAGE", "python:3.11-slim")
    monkeypatch.delenv("SAGETWIN_BASE_IMAGE")
    debian_base = images.recipe("inference").base_tag
    monkeypatch.setenv("SAGETWIN_BASE_IMAGE", "python:3.11-slim")
    docker_answers["present"].add(debian_base)  # bootstrapped earlier
    said = io.StringIO()
    assert images.ensure_base(images.recipe("inference"), StreamReporter(said)) == debian_base
    assert "cannot pull SAGETWIN_BASE_IMAGE=python:3.11-slim" in said.getvalue()
    assert "bootstrapping Debian instead" in said.getvalue()
    assert docker_answers["completed"] == []


def test_the_completion_step_installs_only_what_the_base_lacks(tmp_path):
    """The RUN line of the completion Dockerfile, in a shell whose PATH has python3 but no java or
    ps, and an apt-get that records what it was asked (no network)."""
    import sys

    script = images.COMPLETE_BASE.split("RUN ", 1)[1].replace("\\\n", " ")  # Docker joins continued lines
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    (bin_dir / "rm").symlink_to("/bin/rm")
    calls = tmp_path / "apt-calls"
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n")
    (bin_dir / "apt-get").chmod(0o755)
    done = subprocess.run(["/bin/sh", "-c", script], env={"PATH": str(bin_dir)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == ["update", "install -y --no-install-recommends openjdk-17-jre-headless "
                                                        "procps"]
    (bin_dir / "java").symlink_to("/bin/true")
    (bin_dir / "ps").symlink_to("/bin/true")
    calls.unlink()
    assert subprocess.run(["/bin/sh", "-c", script], env={"PATH": str(bin_dir)}).returncode == 0
    assert not calls.exists()  # nothing lacking: apt-get is not run
