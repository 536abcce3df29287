"""Under rootless Docker, what containers write into a person's folders is already theirs:
sagetwin runs no chown there (an in-container chown to the person's uid would hand the files to a
subordinate uid they cannot even read). Run for real with a rootless engine started here as an
unprivileged user; skipped, with the reason, where that cannot be done (not root, no rootlesskit,
no Docker engine, no sagetwin base image), and failed then under SAGETWIN_REQUIRE_DOCKER=1: CI's
scripts/docker-engine.sh installs rootlesskit and uidmap."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, cannot_run_here

pytestmark = [pytest.mark.docker, pytest.mark.slow]

USER = "sagetwin-rootless"
ROOTLESS_SCRIPT = Path("/usr/share/docker.io/contrib/dockerd-rootless.sh")
SITE_PACKAGES = Path(__import__("pluggy").__file__).parents[1]

CHECK = r'''
import json, os, subprocess, sys, tempfile
from pathlib import Path
from sagetwin.backends.local.containers import give_back_to_user, not_owned_by
from sagetwin.backends.local.docker import engine_is_rootless

image = sys.argv[1]
out = Path(tempfile.mkdtemp(dir=os.environ["HOME"]))
def container(*command):
    subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{out}:/target", "--entrypoint",
                    command[0], image, *command[1:]], check=True, capture_output=True)
container("sh", "-c", "mkdir -p /target/sub && echo w > /target/sub/weights.bin")
report = {"uid": os.getuid(), "rootless": engine_is_rootless(),
          "owner": (out / "sub" / "weights.bin").stat().st_uid}
give_back_to_user(out, image)
report["foreign_after_sagetwin"] = not_owned_by(out, os.getuid())
container("chown", "-R", f"{os.getuid()}:{os.getgid()}", "/target")  # what ran before the fix
report["foreign_after_old_chown"] = not_owned_by(out, os.getuid())
print("REPORT " + json.dumps(report))
'''


def base_image() -> str | None:
    listed = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "sagetwin/base"],
                            capture_output=True, text=True)
    return (listed.stdout.split() or [None])[0] if listed.returncode == 0 else None


@pytest.fixture
def rootless_engine():
    """A rootless dockerd of an unprivileged user (its socket path and the user's uid), stopped after."""
    missing = [why for why, ok in [("not root", os.geteuid() == 0), ("no rootlesskit", shutil.which("rootlesskit")),
                                   ("no dockerd-rootless.sh", ROOTLESS_SCRIPT.exists()),
                                   ("no newuidmap", shutil.which("newuidmap")),
                                   ("no python3 at /usr/bin", Path("/usr/bin/python3").exists())] if not ok]
    image = None if missing else base_image()
    if missing or image is None:
        cannot_run_here("rootless Docker cannot be started here: " + (", ".join(missing) or "no sagetwin/base image"))
    created_user = subprocess.run(["id", USER], capture_output=True).returncode != 0
    if created_user:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", USER], check=True)
    added: list[str] = []
    for table in ("/etc/subuid", "/etc/subgid"):
        if not any(line.startswith(f"{USER}:") for line in Path(table).read_text().splitlines()):
            with open(table, "a") as file:
                file.write(f"{USER}:300000:65536\n")
            added.append(table)
    runtime = Path(tempfile.mkdtemp(prefix="sagetwin-rootless-"))  # 0700, in /tmp: the user can reach it
    shutil.chown(runtime, USER)
    env = (f"XDG_RUNTIME_DIR={runtime} DOCKERD_ROOTLESS_ROOTLESSKIT_NET=host "
           "DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER=none PATH=/usr/share/docker.io/contrib:/usr/sbin:/usr/bin:/bin")
    daemon = subprocess.Popen(["su", USER, "-c", f"env {env} dockerd-rootless.sh --iptables=false --ip6tables=false "
                               f"--bridge=none > {runtime}/dockerd.log 2>&1"], start_new_session=True)
    socket_path = runtime / "docker.sock"
    try:
        deadline = time.monotonic() + 60
        while not socket_path.exists() and daemon.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        if not socket_path.exists():
            pytest.fail(f"rootless dockerd did not start: {(runtime / 'dockerd.log').read_text()[-2000:]}")
        host = f"DOCKER_HOST=unix://{socket_path}"
        subprocess.run(f"docker save {image} | su {USER} -c 'env {host} docker load'", shell=True, check=True,
                       capture_output=True, timeout=300)
        yield {"docker_host": host, "image": image}
    finally:  # the engine, the user and its mappings go as they came: the machine is left as it was
        subprocess.run(["pkill", "-u", USER], capture_output=True)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        subprocess.run(["pkill", "-9", "-u", USER], capture_output=True)
        daemon.poll()
        shutil.rmtree(runtime, ignore_errors=True)
        if created_user:
            subprocess.run(["userdel", "-r", "-f", USER], capture_output=True)
        for table in added:
            lines = Path(table).read_text().splitlines(keepends=True)
            Path(table).write_text("".join(line for line in lines if not line.startswith(f"{USER}:")))


def test_files_written_under_rootless_docker_are_the_users_and_no_chown_runs(rootless_engine):
    home = os.path.expanduser(f"~{USER}")
    command = (f"cd /tmp && env {rootless_engine['docker_host']} HOME={home} PYTHONPATH={REPO}:{SITE_PACKAGES} "
               f"/usr/bin/python3 -c {shlex.quote(CHECK)} {rootless_engine['image']}")
    result = subprocess.run(["su", USER, "-c", command], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.split("REPORT ", 1)[1])
    assert report["rootless"] is True
    assert report["owner"] == report["uid"] != 0  # the container's root is the person, outside
    assert report["foreign_after_sagetwin"] == []  # sagetwin left them the person's
    assert report["foreign_after_old_chown"], report  # the old chown handed them to a subordinate uid
