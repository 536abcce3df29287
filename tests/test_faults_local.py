"""Faults injected into `local` runs: SIGINT, SIGTERM and SIGKILL while a container trains and
while one serves. Nothing may be left behind: no container, no network, no SDK work folder, no
process; after SIGKILL (no chance to clean up) the next local run removes what is left."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import default_ctrl_c
from tests.test_faults import EXPECTED
from tests.test_local_backend import all_containers, no_leftover_containers, require_docker  # noqa: F401

pytestmark = [pytest.mark.docker, pytest.mark.slow]
RUN = [sys.executable, "-m", "sagetwin.cli", "run", "--backend", "local", "--model", "tiny", "--max-steps", "60",
       "--train-size", "64", "--test-size", "16", "--train-batch-size", "4"]
STAGES = {"training": "huggingface-pytorch-training", "serving": "huggingface-pytorch-inference"}


@pytest.fixture(scope="module", autouse=True)
def docker_engine():
    require_docker()


def wait_for_container(run: subprocess.Popen, before: set[str], image_part: str, log: Path) -> str:
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and run.poll() is None:
        for cid in all_containers() - before:
            image = subprocess.run(["docker", "inspect", "--format", "{{.Config.Image}}", cid], capture_output=True,
                                   text=True, timeout=60).stdout
            if image_part in image:
                return cid
        time.sleep(0.3)
    run.kill()
    run.wait()
    raise AssertionError(f"no {image_part} container appeared; the run said: {log.read_text()[-3000:]}")


@pytest.mark.parametrize("sig", list(EXPECTED), ids=lambda s: s.name)
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_signal_at_each_stage_of_a_local_run_leaves_nothing(stage, sig, tmp_path, no_leftover_containers,  # noqa: F811
                                                              no_leftover_processes):
    from sagetwin.backends.local.backend import LocalBackend
    from sagetwin.backends.local.containers import orphaned_containers, reap_orphans
    from sagetwin.backends.local.sdk_folders import reap_orphaned_folders
    from sagetwin.core.progress import StreamReporter

    log = tmp_path / "stderr.txt"
    before = all_containers()
    with log.open("w") as stderr:  # a file, not a pipe: a container's log must never block the run
        run = subprocess.Popen(RUN, stdout=subprocess.DEVNULL, stderr=stderr, text=True, start_new_session=True,
                               preexec_fn=default_ctrl_c)
    container = wait_for_container(run, before, STAGES[stage], log)
    time.sleep(1.0)
    if sig == signal.SIGINT:
        os.killpg(run.pid, sig)  # Ctrl-C reaches the terminal's whole process group
    else:
        run.send_signal(sig)  # `kill` and the OOM killer reach sagetwin alone
    try:
        run.wait(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    code, word = EXPECTED[sig]
    said = log.read_text()
    assert run.returncode == code, said[-3000:]
    if word:
        assert f"sagetwin: {word}; everything this run started has been stopped." in said
        assert container not in all_containers()
        return
    # SIGKILL: nothing could clean up. The container is named as left by a killed run, and the next
    # local run (here: what it does first) removes it and the SDK's folder for it.
    assert container in orphaned_containers()
    report = io.StringIO()
    reap_orphans(StreamReporter(report))
    assert reap_orphaned_folders(LocalBackend().work_dir, StreamReporter(report)) >= 1
    assert "left by a sagetwin run that was killed" in report.getvalue()
    wait_until_gone_compose(run.pid)


def wait_until_gone_compose(killed_pid: int) -> None:
    """The compose client the killed run started ends once its containers are removed."""
    import psutil

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = [p for p in psutil.process_iter(["cmdline", "ppid"])
                if "compose" in " ".join(p.info["cmdline"] or []) and p.info["ppid"] in (1, killed_pid)]
        if not left:
            return
        time.sleep(0.5)
    raise AssertionError(f"compose processes of the killed run still run: {[p.info for p in left]}")
