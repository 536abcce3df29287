"""Training progress: the log shapes understood, and `sagetwin run` on a real pseudo-terminal
showing one live bar, with no log line printed twice."""

from __future__ import annotations

import collections
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable

import pytest

from sagetwin.core.training_log import LogHistory, parse_line
from tests.conftest import default_ctrl_c

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_the_three_progress_shapes_and_noise():
    own = parse_line('step 10/126 (0.88 it/s) {"loss": 0.6917, "epoch": 0.08}')
    assert (own.step, own.total, own.rate, own.metrics) == (10, 126, 0.88, {"loss": 0.6917, "epoch": 0.08})
    trainer = parse_line("{'loss': '0.6917', 'grad_norm': '1.25', 'learning_rate': 4e-05, 'epoch': 0.08}")
    assert trainer.step is None and trainer.metrics == {"loss": 0.6917, "grad_norm": 1.25, "learning_rate": 4e-05,
                                                        "epoch": 0.08}
    assert parse_line("{'eval_loss': 0.69, 'eval_accuracy': 0.5, 'epoch': 1.0}").is_eval
    bar = parse_line(" 30%|███       | 3/10 [00:01<00:03,  2.10it/s]")
    assert (bar.step, bar.total, bar.rate, bar.from_bar) == (3, 10, 2.1, True)
    slow = parse_line(" 50%|█████     | 5/10 [00:10<00:10,  2.00s/it]")
    assert slow.rate == pytest.approx(0.5)
    for noise in ("Loading weights: 100%|██████████| 41/41 [00:00<00:00, 9740.93it/s]",
                  "{'a': 'b'}", "{not python}", "INFO loaded train_dataset length is: 200", "[1, 2]"):
        assert parse_line(noise) is None, noise


def test_log_history_keeps_records_in_order_once():
    history = LogHistory()
    for line in ("step 2/4 (1.0 it/s) {\"loss\": 0.7}", "{'loss': 0.7}", " 75%|███ | 3/4 [00:01<00:01, 2.0it/s]",
                 "{'eval_loss': 0.69, 'epoch': 1.0}"):
        event = parse_line(line)
        history.add(event)
    assert history.records == [{"loss": 0.7, "step": 2.0}, {"eval_loss": 0.69, "epoch": 1.0, "step": 3.0}]


def _own_terminal() -> None:
    """In the child: a new session whose controlling terminal is the pseudo-terminal on its stdin,
    as a login shell has (so Ctrl-C typed there reaches it as SIGINT, handled as a terminal's
    program gets it, whatever this test run inherited)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    default_ctrl_c()


def run_on_a_terminal(argv: list[str], timeout: float = 600,
                      react: Callable[[bytes, Callable[[bytes], object]], None] | None = None) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as stdin, stdout and stderr; return its exit code and output.
    ``react(output_so_far, write)`` may type into the terminal as its output grows."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}  # the terminal's own size
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, preexec_fn=_own_terminal, env=env)
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the terminal closed: everything was read
                    break
                if not chunk:
                    break
                output += chunk
                if react is not None:
                    react(bytes(output), lambda data: os.write(master, data))
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=30), output.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


@pytest.mark.slow
def test_run_on_a_terminal_shows_one_live_bar_and_no_line_twice(no_leftover_processes):
    code, output = run_on_a_terminal([sys.executable, "-m", "sagetwin.cli", "run", "--backend", "process", "--model",
                                      "tiny", "--max-steps", "30", "--train-size", "200", "--test-size", "32",
                                      "--train-batch-size", "8"])
    assert code == 0, output[-3000:]
    assert "\x1b[" in output  # drawn in place with terminal control codes
    lines = [line.rstrip() for line in re.split(r"[\r\n]+", ANSI.sub("", output)) if line.strip()]
    bars = [line for line in lines if line.startswith("training ") and "/30" in line]
    assert any(re.search(r"\b30/30\b.*it/s.*ETA.*loss \d", line) for line in bars), bars[-3:]
    assert any("eval_loss" in line for line in bars)  # eval metrics reach the bar when they come
    logged = [line for line in lines if line.startswith("    | ")]
    twice = [line for line, count in collections.Counter(logged).items() if count > 1]
    assert logged and not twice, twice
    # per-step lines are in the bar, not in the scroll; the evaluation line stays, once
    assert not [line for line in logged if re.match(r"    \| step \d+/30 .*\"loss\"", line)]
    assert len([line for line in logged if "eval_loss" in line and line.startswith("    | step")]) == 1
    assert any(line.startswith("prediction ") for line in lines)


@pytest.mark.slow
def test_run_without_a_terminal_prints_plain_lines(no_leftover_processes):
    result = subprocess.run([sys.executable, "-m", "sagetwin.cli", "run", "--backend", "process", "--model", "tiny",
                             "--max-steps", "4", "--train-size", "64", "--test-size", "16"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "\x1b[" not in result.stderr and "━" not in result.stderr
    assert re.search(r"    \| step 4/4 \(", result.stderr)  # every step line, as a plain log line


def test_image_build_steps_say_how_long_each_took(tmp_path):
    from sagetwin.backends.local.images import _stream

    class Steps:
        def __init__(self) -> None:
            self.steps: list[str] = []

        def step(self, message: str) -> None:
            self.steps.append(message)

        def log(self, line: str) -> None:
            pass

    script = "import time\nprint('Step 1/2 : FROM base', flush=True)\ntime.sleep(0.3)\nprint('Step 2/2 : RUN x')\n"
    reporter = Steps()
    _stream([sys.executable, "-c", script], reporter, "building x")
    assert reporter.steps[0] == "image: Step 1/2 : FROM base"
    took = re.fullmatch(r"image: Step 1/2 took (\d+\.\d)s", reporter.steps[1])
    assert took and float(took[1]) >= 0.3
    assert re.fullmatch(r"image: Step 2/2 took \d+\.\ds; building x done in \d+\.\ds", reporter.steps[3])
