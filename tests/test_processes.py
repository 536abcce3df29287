"""Child processes live exactly as long as they should: helpers end with the command, a server
lives as long as the process that started it (not the thread), and a killed owner takes its
children with it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil

from sagetwin.core.progress import SilentReporter
from sagetwin.emulation.processes import spawn, stop
from sagetwin.emulation.several_hosts import run_streaming
from tests.conftest import holds_for


def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


def test_helpers_a_script_leaves_are_stopped_with_it_and_do_not_hold_the_run(tmp_path: Path):
    pid_file = tmp_path / "helper.pid"
    script = (f"import subprocess, pathlib\n"
              f"helper = subprocess.Popen(['sleep', '120'])  # inherits stdout: the pipe stays open\n"
              f"pathlib.Path({str(pid_file)!r}).write_text(str(helper.pid))\n"
              f"print('script done')\n")
    code, tail = run_streaming([sys.executable, "-c", script], env=None, cwd=tmp_path, reporter=SilentReporter(),
                               log_path=tmp_path / "log")
    assert code == 0 and "script done" in tail
    assert gone(int(pid_file.read_text()))


def test_a_server_started_from_a_thread_outlives_the_thread():
    started: list[subprocess.Popen] = []
    worker = threading.Thread(target=lambda: started.append(spawn(["sleep", "60"])))
    worker.start()
    worker.join()
    proc = started[0]
    try:
        assert holds_for(lambda: proc.poll() is None, seconds=2.0), "the child died with the thread that started it"
    finally:
        stop(proc)
    assert proc.poll() is not None


def test_a_killed_owner_takes_its_children_with_it(tmp_path: Path):
    owner = textwrap.dedent("""
        import sys, time
        from sagetwin.emulation.processes import spawn
        child = spawn(["sleep", "120"])
        print(child.pid, flush=True)
        time.sleep(120)
    """)
    process = subprocess.Popen([sys.executable, "-c", owner], stdout=subprocess.PIPE, text=True)
    wrapper = psutil.Process(int(process.stdout.readline()))
    sleeper = next(iter(wrapper.children()), None)
    while sleeper is None:
        time.sleep(0.05)
        sleeper = next(iter(wrapper.children()), None)
    process.kill()  # SIGKILL: the owner gets no chance to clean up
    process.wait()
    assert gone(wrapper.pid) and gone(sleeper.pid)


def test_a_line_redrawn_with_carriage_returns_reaches_the_reporter_as_it_moves(tmp_path: Path):
    script = ("import sys, time\nsys.stdout.write(' 50%|#    | 1/2 [00:01<00:01, 1.00it/s]\\r'); sys.stdout.flush()\n"
              "time.sleep(1.5)\nprint(' 100%|#####| 2/2 [00:02<00:00, 1.00it/s]')\n")
    seen: list[tuple[float, str]] = []

    class Timed(SilentReporter):
        def log(self, line: str) -> None:
            seen.append((time.monotonic(), line))

    code, _ = run_streaming([sys.executable, "-c", script], env=None, cwd=tmp_path, reporter=Timed(),
                            log_path=tmp_path / "log")
    assert code == 0 and [line.strip()[:4] for _, line in seen] == ["50%|", "100%"]
    assert seen[1][0] - seen[0][0] > 1.0  # the first redraw came before the line ended, not with it


def test_the_check_guard_lets_local_socket_files_through_and_stops_the_network(tmp_path: Path):
    from sagetwin.backends.process.audit_files import audit_env, read_lines

    script = textwrap.dedent("""
        import socket
        a, b = socket.socketpair(socket.AF_UNIX)
        a.sendall(b"x"); assert b.recv(1) == b"x"
        server = socket.socket(socket.AF_UNIX); server.bind("sock"); server.listen()
        socket.socket(socket.AF_UNIX).connect("sock")
        try:
            socket.create_connection((b"example.com", 80), timeout=5)
        except OSError as exc:
            print("refused:", exc)
    """)
    record = str(tmp_path / "audit.json")
    env = {**audit_env({}, record), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "refused: sagetwin check: network access to example.com is blocked" in done.stdout
    assert read_lines(Path(record + ".network")) == ["example.com:80"]
