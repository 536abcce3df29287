"""`sagetwin runs`: a record per training run through the real hooks; list, show (curve, --plot), prune."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sagetwin.core.errors import ConfigurationError, TrainingError
from sagetwin.core.plugins import get_plugin_manager
from sagetwin.core.spec import TrainingResult, TrainingSpec
from sagetwin.runs import records
from sagetwin.runs.folders import disk_usage
from tests.conftest import TRAIN_SCRIPTS

HISTORY = [
    {"loss": 0.6931, "learning_rate": 4e-05, "epoch": 0.5, "step": 10.0},
    {"loss": 0.5214, "learning_rate": 2e-05, "epoch": 1.0, "step": 20.0},
    {"eval_loss": 0.4812, "eval_accuracy": 0.8125, "eval_f1": 0.8, "eval_runtime": 1.25, "epoch": 1.0, "step": 20.0},
    {"train_runtime": 30.5, "train_loss": 0.6, "epoch": 1.0, "step": 20.0},
]
METRICS = {"accuracy": 0.8125, "f1": 0.8, "loss": 0.4812, "train_loss": 0.6}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("SAGETWIN_HOME", str(folder))
    return folder


def make_spec(job: str) -> TrainingSpec:
    return TrainingSpec(job_name=job, entry_point="train.py", source_dir=TRAIN_SCRIPTS, hyperparameters={"epochs": 1},
                        instance_type="ml.p3.2xlarge", transformers_version="4.26.0", pytorch_version="1.13.1",
                        py_version="py39")


def make_folder(parent: Path, job: str, size: int = 40_000) -> Path:
    folder = parent / job
    (folder / "output").mkdir(parents=True)
    (folder / "output" / "model.tar.gz").write_bytes(os.urandom(size))
    return folder


def completed_result(home: Path, job: str, *, history: list | None = None, folder: Path | None = None
                     ) -> TrainingResult:
    folder = folder or make_folder(home / "runs", job)
    return TrainingResult(job, "process", (folder / "output" / "model.tar.gz").as_uri(), dict(METRICS),
                          duration_s=42.0, details={"run_dir": str(folder), "log": str(folder / "training.log")},
                          log_history=list(HISTORY if history is None else history))


def train(job: str, *, result: TrainingResult | None = None, error: BaseException | None = None) -> None:
    """What HuggingFaceJob.fit tells plugins about a run, through the real plugin manager."""
    hook = get_plugin_manager().hook
    spec = make_spec(job)
    hook.sagetwin_training_started(spec=spec, backend="process")
    hook.sagetwin_training_finished(spec=spec, result=result, error=error)


def set_started(job: str, when: datetime) -> None:
    record = records.read_record(job)
    record["started"] = when.isoformat(timespec="seconds")
    records.write_record(record)


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    from sagetwin.cli import main

    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}  # main() sets both
    capsys.readouterr()
    try:
        code = main(list(args))
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    out, err = capsys.readouterr()
    return code, out, err


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def assert_real_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 0 and height > 0
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    empty = Figure(figsize=(width / 100, height / 100), dpi=100)
    FigureCanvasAgg(empty)
    blank = io.BytesIO()
    empty.savefig(blank, format="png")
    assert len(data) > len(blank.getvalue()) * 2, "the plot is no bigger than an empty figure"
    pixels = imread(path)[..., :3].reshape(-1, 3)
    colours = {tuple(p) for p in pixels[:: max(1, len(pixels) // 20000)]}
    assert len(colours) > 10, "the plot is (almost) a single colour"


# -- records through the hooks ------------------------------------------------------------------------


def test_a_run_is_recorded_running_then_completed(home: Path):
    spec = make_spec("rec-ok")
    hook = get_plugin_manager().hook
    hook.sagetwin_training_started(spec=spec, backend="process")
    running = json.loads((home / "run-records" / "rec-ok.json").read_text())
    assert running["status"] == "running" and running["pid"] == os.getpid()
    assert running["stack"] == {"transformers": "4.26.0", "pytorch": "1.13.1", "py": "py39"}
    assert running["instance_type"] == "ml.p3.2xlarge" and running["instance_count"] == 1
    assert running["entry_point"] == "train.py" and running["backend"] == "process"
    assert datetime.fromisoformat(running["started"]).tzinfo is not None
    assert records.status_of(running) == "running"

    hook.sagetwin_training_finished(spec=spec, result=completed_result(home, "rec-ok"), error=None)
    done = records.read_record("rec-ok")
    assert done["status"] == "completed" and done["duration_s"] == 42.0
    assert done["metrics"] == METRICS and done["log_history"] == HISTORY
    assert done["details"]["run_dir"] == str(home / "runs" / "rec-ok")
    assert done["model_data"].endswith("rec-ok/output/model.tar.gz") and "finished" in done
    assert [p.name for p in (home / "run-records").iterdir()] == ["rec-ok.json"]  # no temp file left


def test_failed_and_interrupted_runs(home: Path):
    from sagetwin.cli import Terminated

    train("rec-fail", error=TrainingError("training job rec-fail failed: train.py exited with code 1.",
                                          "fix the error.", exit_code=1, log_tail="Traceback\nValueError: bad"))
    train("rec-ctrl-c", error=KeyboardInterrupt())
    train("rec-sigterm", error=Terminated())
    failed = records.read_record("rec-fail")
    assert failed["status"] == "failed" and failed["error_type"] == "TrainingError"
    assert failed["error"].startswith("training job rec-fail failed: train.py exited with code 1.")
    assert "\n" not in failed["error"] and isinstance(failed["duration_s"], float)
    assert records.read_record("rec-ctrl-c")["status"] == "interrupted"
    assert records.read_record("rec-sigterm")["status"] == "interrupted"


def test_a_second_job_of_a_taken_name_leaves_the_first_record_alone(home: Path):
    train("rec-twice", result=completed_result(home, "rec-twice"))
    train("rec-twice", error=ConfigurationError("a training job with name rec-twice already exists.", "rename"))
    record = records.read_record("rec-twice")
    assert record["status"] == "completed" and record["metrics"] == METRICS


def test_a_record_that_cannot_be_written_does_not_break_training(home: Path, capsys):
    (home / "run-records").write_text("not a folder")
    train("rec-nowhere", result=completed_result(home, "rec-nowhere"))  # must not raise
    assert "could not write the run record of rec-nowhere" in capsys.readouterr().err


def test_a_running_record_whose_process_is_gone_is_lost(home: Path, capsys):
    record = {**records.started_record(make_spec("rec-lost"), "process"), "pid": dead_pid()}
    records.write_record(record)
    assert records.status_of(record) == "lost"
    code, out, _ = cli(capsys, "runs")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("rec-lost"))
    assert " lost " in row and "running" not in row
    assert "lost: ended without a record" in out
    code, out, _ = cli(capsys, "runs", "--json")
    assert json.loads(out)[0]["status"] == "lost"


# -- list ---------------------------------------------------------------------------------------------


def test_runs_lists_newest_first_with_stack_status_metrics_and_size(home: Path, capsys):
    now = datetime.now(timezone.utc)
    train("list-old", result=completed_result(home, "list-old"))
    train("list-new", error=RuntimeError("boom\nsecond line"))
    set_started("list-old", now - timedelta(hours=2))
    size = disk_usage(home / "runs" / "list-old")
    assert size >= 40_000

    code, out, _ = cli(capsys, "runs")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["JOB", "BACKEND", "STACK", "STATUS", "DURATION", "METRICS", "SIZE", "STARTED", "(UTC)"]
    assert [line.split()[0] for line in lines[1:3]] == ["list-new", "list-old"]
    old = lines[2]
    assert "4.26.0/1.13.1/py39" in old and "completed" in old and "42s" in old
    assert "acc 0.812 f1 0.800 eval_loss 0.481" in old and "kB" in old
    assert "failed" in lines[1]
    code, listed, _ = cli(capsys, "runs", "list")
    assert code == 0 and listed == out

    code, out, _ = cli(capsys, "runs", "list", "--json")
    data = json.loads(out)  # stdout holds the JSON document alone
    assert [r["job_name"] for r in data] == ["list-new", "list-old"]
    assert data[1]["size_bytes"] == size and data[1]["log_records"] == len(HISTORY) and "log_history" not in data[1]
    assert data[0]["status"] == "failed" and data[0]["error"] == "boom"
    assert json.loads(cli(capsys, "runs", "--json")[1]) == data


def test_folders_from_before_records_are_listed_and_prunable(home: Path, capsys):
    folder = make_folder(home / "runs", "legacy-run", size=120_000)
    data_dir = folder / "opt_ml" / "output" / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "metrics.json").write_text(json.dumps({"accuracy": 0.75, "f1": 0.7, "loss": 0.55}))
    code, out, _ = cli(capsys, "runs", "--json")
    (run,) = json.loads(out)
    assert run["job_name"] == "legacy-run" and run["status"] == "unknown" and run["recorded"] is False
    assert run["backend"] == "process" and run["metrics"]["accuracy"] == 0.75
    assert run["size_bytes"] >= 120_000
    assert "acc 0.750" in cli(capsys, "runs")[1]

    # just written: it may be a run in progress (`sagetwin check` keeps none): kept
    code, out, _ = cli(capsys, "runs", "prune", "--keep", "0", "--yes")
    assert code == 0 and "may be running" in out and folder.is_dir()
    old = (datetime.now() - timedelta(days=3)).timestamp()
    os.utime(folder, (old, old))
    code, out, _ = cli(capsys, "runs", "prune", "--keep", "0", "--yes")
    assert code == 0 and not folder.exists()
    assert f"freed {out.split('freed ')[1].split(' (')[0]} ({run['size_bytes']} bytes)" in out


PAUSED_SCRIPT = """import os, pathlib, time
pathlib.Path(os.environ["PAUSED_FLAG"]).write_text("at a breakpoint")
while not pathlib.Path(os.environ["RELEASE_FLAG"]).exists():
    time.sleep(0.1)
"""
# what `sagetwin check` does: the process backend's fit, with no hooks, so the run keeps no record
UNRECORDED_RUN = """import dataclasses, pathlib, sys
from sagetwin.backends.process.backend import ProcessBackend
from sagetwin.core.progress import SilentReporter
from tests.test_runs import make_spec
spec = dataclasses.replace(make_spec("paused-check"), source_dir=pathlib.Path(sys.argv[1]), hyperparameters={})
ProcessBackend().fit(spec, SilentReporter())
"""


def test_prune_keeps_an_unrecorded_run_whose_process_is_paused_however_long_it_is_quiet(home: Path, tmp_path: Path,
                                                                                       capsys, no_leftover_processes):
    """A run with no record, quiet for days (a `sagetwin check` run at a breakpoint): its folder
    is kept while its process lives, and prunable as soon as the process ends."""
    import time

    from tests.conftest import REPO

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text(PAUSED_SCRIPT)
    paused, release = tmp_path / "paused", tmp_path / "release"
    child = subprocess.Popen([sys.executable, "-c", UNRECORDED_RUN, str(tmp_path / "code")], cwd=REPO,
                             env={**os.environ, "PAUSED_FLAG": str(paused), "RELEASE_FLAG": str(release)})
    folder = home / "runs" / "paused-check"
    try:
        deadline = time.monotonic() + 120
        while not paused.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert paused.exists(), "the run did not reach its pause"
        old = (datetime.now() - timedelta(days=3)).timestamp()
        for path in (folder, folder / "training.log"):
            os.utime(path, (old, old))
        code, out, _ = cli(capsys, "runs", "prune", "--keep", "0", "--yes")
        assert code == 0 and "keeping paused-check: a process still works in its folder" in out, out
        assert (folder / "opt_ml" / "code" / "train.py").is_file()
    finally:
        release.touch()
        child.wait(timeout=120)
    assert child.returncode == 0
    code, out, _ = cli(capsys, "runs", "prune", "--keep", "0", "--yes")  # just written, but known to be idle
    assert code == 0 and "removed paused-check" in out and not folder.exists()


# -- show ---------------------------------------------------------------------------------------------


def test_show_prints_the_record_metrics_and_curve(home: Path, capsys):
    train("show-me", result=completed_result(home, "show-me"))
    code, out, _ = cli(capsys, "runs", "show", "show-me")
    assert code == 0
    assert "status           completed" in out and "stack            4.26.0/1.13.1/py39" in out
    assert "instance         ml.p3.2xlarge x 1" in out and str(home / "runs" / "show-me") in out
    assert "accuracy       0.8125" in out
    curve = out.split("training curve (3 log records)\n")[1].splitlines()
    assert curve[0].split() == ["step", "epoch", "loss", "eval_loss", "eval_accuracy", "eval_f1"]
    assert curve[1].split() == ["10", "0.5", "0.6931", "-", "-", "-"]
    assert curve[3].split() == ["20", "1", "-", "0.4812", "0.8125", "0.8"]
    assert "eval_runtime" not in out.split("training curve")[1]

    code, out, _ = cli(capsys, "runs", "show", "show-me", "--json")
    shown = json.loads(out)
    assert shown["log_history"] == HISTORY and shown["status"] == "completed" and shown["size_bytes"] > 0


def test_show_unknown_job_names_close_matches(home: Path, capsys):
    train("show-my-job", result=completed_result(home, "show-my-job"))
    code, _, err = cli(capsys, "runs", "show", "show-my-jbo")
    assert code == 2
    assert "no run named 'show-my-jbo'" in err and "did you mean show-my-job" in err and "`sagetwin runs`" in err


def test_plot_writes_a_real_png(home: Path, tmp_path: Path, capsys):
    train("plot-me", result=completed_result(home, "plot-me"))
    target = tmp_path / "loss.png"
    code, out, err = cli(capsys, "runs", "show", "plot-me", "--plot", str(target))
    assert code == 0, err
    assert f"plot written to {target}" in out
    assert_real_png(target)


def test_a_run_without_log_records_says_so_and_refuses_to_plot(home: Path, tmp_path: Path, capsys):
    train("no-curve", result=completed_result(home, "no-curve", history=[]))
    code, out, _ = cli(capsys, "runs", "show", "no-curve")
    assert code == 0 and "no training curve: the run's log has no loss or eval records" in out
    target = tmp_path / "empty.png"
    code, _, err = cli(capsys, "runs", "show", "no-curve", "--plot", str(target))
    assert code == 2 and "nothing to plot for no-curve" in err
    assert not target.exists()


def test_plot_without_matplotlib_names_the_extra(home: Path, tmp_path: Path, capsys, monkeypatch):
    train("no-mpl", result=completed_result(home, "no-mpl"))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    target = tmp_path / "loss.png"
    code, _, err = cli(capsys, "runs", "show", "no-mpl", "--plot", str(target))
    assert code == 2 and "needs matplotlib" in err and "pip install 'sagetwin[plot]'" in err
    assert not target.exists()


# -- prune --------------------------------------------------------------------------------------------


def five_runs(home: Path) -> list[str]:
    """Five completed runs, newest first, started an hour apart."""
    now = datetime.now(timezone.utc)
    jobs = [f"prune-{i}" for i in range(5)]
    for hours, job in enumerate(jobs):
        train(job, result=completed_result(home, job))
        set_started(job, now - timedelta(hours=hours))
    return jobs


def test_prune_keeps_the_n_newest_and_reports_bytes_freed(home: Path, capsys):
    jobs = five_runs(home)
    expected = sum(disk_usage(home / "runs" / job) for job in jobs[2:])
    code, out, _ = cli(capsys, "runs", "prune", "--keep", "2", "--yes")
    assert code == 0
    for job in jobs[:2]:
        assert records.read_record(job) and (home / "runs" / job).is_dir()
    for job in jobs[2:]:
        assert records.read_record(job) is None and not (home / "runs" / job).exists()
        assert f"removed {job} and {home / 'runs' / job}" in out
    assert f"({expected} bytes)" in out.splitlines()[-1]


def test_prune_defaults_to_keeping_ten(home: Path, capsys):
    five_runs(home)
    code, out, _ = cli(capsys, "runs", "prune", "--yes")
    assert code == 0 and "nothing to prune" in out and len(records.all_records()) == 5


def test_prune_older_than(home: Path, capsys):
    now = datetime.now(timezone.utc)
    for job, age in (("age-40d", 40), ("age-1d", 1), ("age-0d", 0)):
        train(job, result=completed_result(home, job))
        set_started(job, now - timedelta(days=age, minutes=1))
    code, out, _ = cli(capsys, "runs", "prune", "--older-than", "30", "--yes")
    assert code == 0
    assert records.read_record("age-40d") is None and not (home / "runs" / "age-40d").exists()
    assert records.read_record("age-1d") and records.read_record("age-0d")
    code, out, _ = cli(capsys, "runs", "prune", "--older-than", "0.5", "--keep", "0", "--yes")
    assert records.read_record("age-1d") is None and records.read_record("age-0d")


def test_prune_never_removes_a_running_run(home: Path, capsys):
    spec = make_spec("still-running")
    hook = get_plugin_manager().hook
    hook.sagetwin_training_started(spec=spec, backend="process")  # this process: alive
    folder = make_folder(home / "runs", "still-running")
    try:
        code, out, _ = cli(capsys, "runs", "prune", "--keep", "0", "--yes")
        assert code == 0 and f"keeping still-running: still running (pid {os.getpid()}" in out
        assert records.read_record("still-running")["status"] == "running" and folder.is_dir()
    finally:
        hook.sagetwin_training_finished(spec=spec, result=None, error=KeyboardInterrupt())


def test_prune_never_deletes_outside_home(home: Path, tmp_path: Path, capsys):
    mine = make_folder(tmp_path / "my-output", "outside-job")  # a person's own output_path
    train("outside-job", result=completed_result(home, "outside-job", folder=mine))
    elsewhere = make_folder(tmp_path / "elsewhere", "linked-job")
    (home / "runs").mkdir(exist_ok=True)
    (home / "runs" / "linked-job").symlink_to(elsewhere, target_is_directory=True)
    train("linked-job", result=completed_result(home, "linked-job", folder=home / "runs" / "linked-job"))

    code, out, _ = cli(capsys, "runs", "prune", "--keep", "0", "--yes")
    assert code == 0
    assert (mine / "output" / "model.tar.gz").is_file() and (elsewhere / "output" / "model.tar.gz").is_file()
    assert records.read_record("outside-job") is None and records.read_record("linked-job") is None
    assert f"removed the record of outside-job; kept {mine}" in out
    assert "freed 0 B (0 bytes)" in out


def test_a_job_named_runs_is_not_taken_for_the_folder_of_all_runs(home: Path, capsys):
    train("keep-me", result=completed_result(home, "keep-me"))
    named_runs = completed_result(home, "runs")
    named_runs.details = {}  # its folder is found from model_data: .../runs/runs/output/model.tar.gz
    train("runs", result=named_runs)
    set_started("keep-me", datetime.now(timezone.utc) + timedelta(minutes=1))
    code, out, _ = cli(capsys, "runs", "prune", "--keep", "1", "--yes")
    assert code == 0 and f"removed runs and {home / 'runs' / 'runs'}" in out
    assert (home / "runs" / "keep-me" / "output" / "model.tar.gz").is_file() and records.read_record("keep-me")


def test_prune_dry_run_removes_nothing(home: Path, capsys):
    jobs = five_runs(home)
    code, out, _ = cli(capsys, "runs", "prune", "--keep", "1", "--dry-run")
    assert code == 0 and "would remove 4 run(s)" in out
    assert all(job in out for job in jobs[1:]) and jobs[0] + ":" not in out
    assert len(records.all_records()) == 5 and all((home / "runs" / job).is_dir() for job in jobs)


def test_prune_without_a_terminal_needs_yes(home: Path, capsys, monkeypatch):
    jobs = five_runs(home)
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal
    code, _, err = cli(capsys, "runs", "prune", "--keep", "0")
    assert code == 2 and "no terminal" in err and "--yes" in err
    assert len(records.all_records()) == 5 and all((home / "runs" / job).is_dir() for job in jobs)


# -- one real run ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_real_training_run_is_recorded_shown_plotted_and_pruned(sample_channels, tiny_hyperparameters, home,
                                                                   tmp_path, capsys, no_leftover_processes):
    import sagetwin
    from sagetwin.core.progress import SilentReporter

    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, hyperparameters=tiny_hyperparameters,
                                  backend="process", reporter=SilentReporter())
    result = job.fit(sample_channels)
    record = records.read_record(result.job_name)
    assert record["status"] == "completed" and record["backend"] == "process"
    assert any("loss" in r for r in record["log_history"]) and any("eval_loss" in r for r in record["log_history"])
    assert set(record["metrics"]) >= {"accuracy", "f1"}
    folder = home / "runs" / result.job_name
    assert folder.is_dir()

    code, out, _ = cli(capsys, "runs", "show", result.job_name, "--plot", str(tmp_path / "real.png"))
    assert code == 0 and "training curve (" in out
    assert_real_png(tmp_path / "real.png")
    code, out, _ = cli(capsys, "runs", "--json")
    (listed,) = json.loads(out)
    assert listed["size_bytes"] == disk_usage(folder) > 0
    code, out, _ = cli(capsys, "runs", "prune", "--keep", "0", "--yes")
    assert code == 0 and not folder.exists() and records.read_record(result.job_name) is None
