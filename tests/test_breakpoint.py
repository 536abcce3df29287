"""``breakpoint()`` on the process backend: pdb on the terminal sagetwin runs in (training and
``inference.py``), and a fast, clear failure when there is no terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from sagetwin.emulation.debugging import debugger_env
from tests.conftest import TRAIN_SCRIPTS
from tests.test_progress import ANSI, run_on_a_terminal

TINY_RUN = ["run", "--backend", "process", "--model", "tiny", "--max-steps", "4", "--train-size", "64",
            "--test-size", "16"]


@pytest.fixture
def script_with_breakpoint(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(
        "import runpy\nanswer = 41\nbreakpoint()\n"
        f"runpy.run_path({str(TRAIN_SCRIPTS / 'train.py')!r}, run_name='__main__')\n")
    return tmp_path


def answer_pdb(commands: list[str]):
    """A terminal that types ``commands`` one at a time, each at a ``(Pdb)`` prompt."""
    pending = list(commands)

    def react(output: bytes, write) -> None:
        if pending and output.count(b"(Pdb) ") > len(commands) - len(pending):
            write(pending.pop(0).encode() + b"\n")

    return react


@pytest.mark.slow
def test_breakpoint_in_train_py_stops_at_pdb_on_the_terminal_and_continues(script_with_breakpoint,
                                                                           no_leftover_processes):
    code, output = run_on_a_terminal([sys.executable, "-m", "sagetwin.cli", *TINY_RUN, "--source-dir",
                                      str(script_with_breakpoint)], react=answer_pdb(["p answer + 1", "c"]))
    text = ANSI.sub("", output)
    assert code == 0, text[-3000:]
    assert re.search(r"\(Pdb\) p answer \+ 1\r?\n42\r?\n", text)  # the prompt read the terminal and answered
    assert "train.py(4)<module>()" in text  # stopped right after the breakpoint() line
    assert "prediction " in text  # `c` let the run go on to the end


def test_breakpoint_without_a_terminal_fails_fast_with_the_fix(script_with_breakpoint):
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "sagetwin.cli", *TINY_RUN, "--source-dir",
                             str(script_with_breakpoint)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2
    assert "breakpoint() at" in result.stderr and "train.py:3" in result.stderr
    assert "not running on a terminal" in result.stderr and "PYTHONBREAKPOINT=0" in result.stderr
    assert time.monotonic() - started < 120  # it did not wait for an answer


def test_a_pythonbreakpoint_of_ones_own_is_left_alone():
    assert debugger_env({"PYTHONBREAKPOINT": "0"}) == {}
    env = debugger_env({"PYTHONPATH": "/code"})
    assert env["PYTHONBREAKPOINT"] == "sagetwin_debugger.set_trace"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == "/code"  # the job's own code still comes first
    assert (Path(env["PYTHONPATH"].split(os.pathsep)[-1]) / "sagetwin_debugger.py").is_file()


@pytest.mark.slow
def test_breakpoint_in_inference_py_stops_the_model_load_until_continued(trained_tiny, tmp_path,
                                                                         no_leftover_processes):
    model = tmp_path / "model"
    with tarfile.open(trained_tiny.model_data.removeprefix("file://")) as tar:
        tar.extractall(model, filter="data")
    (model / "code").mkdir()
    (model / "code" / "inference.py").write_text(
        "from transformers import pipeline\n\n\ndef model_fn(model_dir):\n    loaded = 'yes'\n    breakpoint()\n"
        "    return pipeline('text-classification', model=model_dir)\n")
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for item in model.iterdir():
            tar.add(item, arcname=item.name)
    typed = answer_pdb(["p loaded", "c"])

    def react(output: bytes, write) -> None:
        typed(output, write)
        if b"curl  curl" in output and not react.stopped:
            react.stopped = True
            write(b"\x03")  # Ctrl-C, as a person stops `sagetwin serve`

    react.stopped = False
    code, output = run_on_a_terminal([sys.executable, "-m", "sagetwin.cli", "serve", str(archive), "--backend",
                                      "process"], react=react, timeout=300)
    text = ANSI.sub("", output)
    assert "inference.py(7)model_fn()" in text and re.search(r"\(Pdb\) p loaded\r?\n'yes'", text), text[-3000:]
    assert "url   http://127.0.0.1:" in text  # continued: the model loaded and the endpoint served
    assert code == 0 and "deleted" in text.splitlines()[-1], text[-2000:]



PAUSED_REQUEST = '''
import sys, time
import sagetwin
from sagetwin.core.progress import SilentReporter

job = sagetwin.HuggingFaceJob("train.py", source_dir=sys.argv[2], backend="process", reporter=SilentReporter())
with job.deploy(model_data=sys.argv[1], invocation_timeout=2) as predictor:
    started = time.monotonic()
    try:
        predictor.predict({"inputs": "stop here"})
        print("ANSWERED", flush=True)
    except sagetwin.InvocationError as exc:
        print(f"TIMED OUT after {time.monotonic() - started:.1f} s: {exc}", flush=True)
    deadline = time.monotonic() + 60
    while True:  # answered once pdb is continued (the worker finishes the paused prediction first)
        try:
            print("QUICK", predictor.predict({"inputs": "quick"})[0]["label"], flush=True)
            break
        except sagetwin.InvocationError:
            if time.monotonic() > deadline:
                raise
'''


@pytest.mark.slow
def test_a_request_paused_at_a_breakpoint_still_times_out_for_its_caller(trained_tiny, tmp_path,
                                                                         no_leftover_processes):
    """The README's promise, with invocation_timeout=2 for its 60 s: a prediction stopped at a
    ``breakpoint()`` in ``predict_fn`` (pdb on the terminal) fails for its caller after the
    timeout while pdb waits; once continued, the endpoint answers again."""
    from tests.test_serving import archive_with_code

    model = archive_with_code(trained_tiny, tmp_path, "def predict_fn(data, model):\n"
                                                      "    if data['inputs'] == 'stop here':\n"
                                                      "        breakpoint()\n"
                                                      "    return model(data['inputs'])\n")
    typed = answer_pdb(["p data['inputs']", "c"])

    def react(output: bytes, write) -> None:
        if b"TIMED OUT" in output:  # pdb is answered only after the caller gave up
            typed(output, write)

    code, output = run_on_a_terminal([sys.executable, "-c", PAUSED_REQUEST, model, str(TRAIN_SCRIPTS)],
                                     react=react, timeout=300)
    text = ANSI.sub("", output)
    assert code == 0, text[-3000:]
    assert "inference.py(4)predict_fn()" in text and re.search(r"p data\['inputs'\]\r?\n'stop here'", text), \
        text[-3000:]
    waited = float(re.search(r"TIMED OUT after ([\d.]+) s", text).group(1))
    assert 1.5 < waited < 10, text[-2000:]  # while pdb still held the request
    assert "ANSWERED" not in text and re.search(r"QUICK (NEGATIVE|POSITIVE)", text), text[-2000:]
