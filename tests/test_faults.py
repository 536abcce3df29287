"""Faults injected into `process` runs: signals at each stage, a full disk. Nothing may be left
behind: `no_leftover_processes` finds any process the run started, even one re-parented to init."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sagetwin
from sagetwin.core.progress import SilentReporter
from tests.conftest import TRAIN_SCRIPTS, cannot_run_here, default_ctrl_c, read_until, signal_and_wait

RUN = [sys.executable, "-m", "sagetwin.cli", "run", "--backend", "process", "--model", "tiny", "--max-steps", "40",
       "--train-size", "64", "--test-size", "16", "--train-batch-size", "4"]
STAGES = {"training": "process: running train.py", "serving": "starting model server"}
EXPECTED = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated"), signal.SIGKILL: (-9, None)}


@pytest.mark.slow
@pytest.mark.parametrize("sig", list(EXPECTED), ids=lambda s: s.name)
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_signal_at_each_stage_of_a_process_run_leaves_nothing(stage, sig, no_leftover_processes):
    run = subprocess.Popen(RUN, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_ctrl_c)
    try:  # never signal a run that is not at the stage under test; a silent one fails, not hangs
        read_until(run.stderr, STAGES[stage], timeout=300)
    except BaseException:
        run.kill()
        run.wait()
        raise
    time.sleep(0.5)
    err = signal_and_wait(run, sig, timeout=120)
    code, word = EXPECTED[sig]
    assert run.returncode == code, err[-2000:]
    if word:
        assert f"sagetwin: {word}; everything this run started has been stopped." in err


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 256 KB file system: too small for the run folder (root may mount one; others skip, and
    fail under SAGETWIN_REQUIRE_DOCKER=1: CI runs as root)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        cannot_run_here("mounting a small tmpfs needs root and mount")
    mount_point = tmp_path / "tiny-disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        cannot_run_here(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.slow
def test_a_full_disk_is_named_with_the_way_out_and_the_run_folder_removed(tiny_disk, sample_channels,
                                                                          tiny_hyperparameters, no_leftover_processes):
    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, hyperparameters=tiny_hyperparameters,
                                  backend="process", output_path=str(tiny_disk), reporter=SilentReporter())
    with pytest.raises(sagetwin.ConfigurationError) as info:
        job.fit(sample_channels, job_name="disk-full")
    text = info.value.render()
    assert f"no space left on the device holding {tiny_disk}" in text and "sagetwin runs prune" in text
    assert not list(tiny_disk.iterdir())  # the half-written run folder is gone
