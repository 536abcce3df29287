"""This program's side of the warm model-server parent (``fork_server``): one per serving Python,
started by the first deploy that needs it and ended with the program.

A deploy hands it an order and gets back the pid of a forked model server, wrapped as a
``ForkedServer`` that the rest of sagetwin stops and polls like any process it spawned.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from sagetwin.core.paths import private_folders
from sagetwin.emulation.fork_server import EXIT_CODE_FILE
from sagetwin.emulation.processes import spawn, stop

PRELOAD_TIMEOUT_S = 300.0
# Read by the toolkit when it loads a model, not when a package is imported: a deploy whose
# environment differs from the warm parent's only in these can be forked from it.
# (The toolkit reads HF_API_TOKEN, HF_MODEL_REVISION and HF_TRUST_REMOTE_CODE when it is imported:
# those are not here.)
LOAD_TIME_VARIABLES = frozenset({
    "HF_TASK", "HF_MODEL_ID", "HF_DEFAULT_PIPELINE_NAME", "SAGEMAKER_PROGRAM", "SAGEMAKER_SUBMIT_DIRECTORY",
    "SAGEMAKER_REGION", "SAGEMAKER_CONTAINER_LOG_LEVEL",
    "SAGEMAKER_MODEL_SERVER_WORKERS", "SAGEMAKER_MODEL_SERVER_TIMEOUT", "SAGETWIN_LOG_LEVEL",
})


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat), None once it has ended:
    with the pid it names one process, never a later one that reuses the pid. A zombie whose
    other threads are still exiting has not ended: it still holds its files and sockets."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ended = fields[0] == "X" or (fields[0] == "Z" and int(fields[17]) <= 1)
    return None if ended else fields[19]


class ForkedServer:
    """A model server forked by the warm parent: not this program's child, so it is polled
    through ``/proc`` (pid and start time), its exit code read from the file it writes on the
    way out, and it is stopped by its own ``stop()``."""

    def __init__(self, pid: int, log_dir: Path) -> None:
        self.pid = pid
        self.args = ["fork_server child", str(pid)]
        self._started = _start_time(pid)
        self._exit_file = log_dir / EXIT_CODE_FILE
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if self._started is not None and _start_time(self.pid) == self._started:
            return None
        try:
            self.returncode = int(self._exit_file.read_text())
        except (OSError, ValueError):
            self.returncode = 128 + signal.SIGKILL  # ended by a signal before it could say
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM its process group, SIGKILL after ``grace``; nothing once it is gone (its pid
        may belong to another process by then)."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            if self.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.wait(timeout=wait)
        return self.poll()


class WarmParent:
    """One running ``fork_server``, the environment it was started with, and its children."""

    def __init__(self, python: str, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        private_folders(cwd.parent, cwd.name)  # an empty folder: the user's files never shadow a module
        self.proc = spawn([python, "-m", "sagetwin.emulation.fork_server"], env=env, cwd=cwd, stdin=subprocess.PIPE)
        self.children: list[ForkedServer] = []
        self._ready = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def idle(self) -> bool:
        return all(child.poll() is not None for child in self.children)

    def fork(self, order: dict[str, object], timeout: float) -> ForkedServer:
        """A child serving ``order``; RuntimeError if the parent cannot make one."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if not self._ready:
            self._expect("ready", timeout)
            self._ready = True
        self.proc.stdin.write((json.dumps(order) + "\n").encode())
        self.proc.stdin.flush()
        child = ForkedServer(int(self._expect("pid", 30.0)), Path(str(order["log"])).parent)  # type: ignore[call-overload]
        self.children = [c for c in self.children if c.poll() is None] + [child]
        return child

    def _expect(self, key: str, timeout: float) -> object:
        """The next line naming ``key``; anything else it printed (warnings) is passed over."""
        assert self.proc.stdout is not None
        result: dict[str, object] = {}

        def read() -> None:
            for raw in iter(self.proc.stdout.readline, b""):  # type: ignore[union-attr]
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(message, dict) and key in message:
                    result["value"] = message[key]
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if "value" not in result:
            raise RuntimeError(f"the warm model-server parent did not answer {key!r} (exit code {self.proc.poll()})")
        return result["value"]

    def close(self) -> None:
        stop(self.proc, grace=5.0)


class WarmServers:
    """The warm parents of this program: one per serving Python and environment. A parent whose
    environment is no longer asked for is stopped once none of its servers is left (stopping it
    stops them)."""

    def __init__(self) -> None:
        self._parents: dict[tuple[str, frozenset[tuple[str, str]]], WarmParent] = {}
        self._lock = threading.Lock()

    def start_server(self, python: str, env: dict[str, str], model_dir: Path, port_file: Path, log: Path,
                     cwd: Path, port: int = 0, timeout: float = PRELOAD_TIMEOUT_S, opt_ml: Sequence[str] = ()
                     ) -> ForkedServer:
        """A model server for ``model_dir`` forked from the warm parent of ``python`` for ``env``
        (started first if there is none); ``opt_ml``: the namespace it enters first, as ``spawn``'s."""
        base = {k: v for k, v in env.items() if k not in LOAD_TIME_VARIABLES}
        key = (python, frozenset(base.items()))
        with self._lock:
            for other_key, other in list(self._parents.items()):
                if other_key != key and (not other.alive() or other.idle()):
                    other.close()
                    del self._parents[other_key]
            parent = self._parents.get(key)
            if parent is None or not parent.alive():
                parent = self._parents[key] = WarmParent(python, base, cwd.parent.parent / "warm-parent")
            order = {"model_dir": str(model_dir), "port_file": str(port_file), "log": str(log), "cwd": str(cwd),
                     "env": env, "port": port, "opt_ml": list(opt_ml)}
            try:
                return parent.fork(order, timeout)
            except (RuntimeError, OSError):
                if not parent.alive() or parent.idle():
                    parent.close()
                    del self._parents[key]
                raise

    def close(self) -> None:
        with self._lock:
            parents, self._parents = list(self._parents.values()), {}
        for parent in parents:
            parent.close()


warm_servers = WarmServers()


def warm_serving_enabled() -> bool:
    """On unless ``SAGETWIN_WARM_SERVING=0`` (every deploy then starts a fresh interpreter)."""
    return os.environ.get("SAGETWIN_WARM_SERVING", "1") not in ("0", "false", "no") and sys.platform == "linux"
