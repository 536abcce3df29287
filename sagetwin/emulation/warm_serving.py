"""This program's side of the warm model-server parent (``fork_server``): one per serving Python,
started by the first deploy that needs it and ended with the program.

A deploy hands it an order and gets back the pid of a forked model server, wrapped as a
``ForkedServer`` that the rest of sagetwin stops and polls like any process it spawned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from sagetwin.emulation.fork_server import EXIT_CODE_FILE
from sagetwin.emulation.processes import spawn, stop

PRELOAD_TIMEOUT_S = 300.0
# Read by the toolkit when it loads a model, not when a package is imported: a deploy whose
# environment differs from the warm parent's only in these can be forked from it.
LOAD_TIME_VARIABLES = frozenset({
    "HF_TASK", "HF_MODEL_ID", "HF_MODEL_REVISION", "HF_API_TOKEN", "HF_TRUST_REMOTE_CODE", "HF_DEFAULT_PIPELINE_NAME",
    "SAGEMAKER_PROGRAM", "SAGEMAKER_SUBMIT_DIRECTORY", "SAGEMAKER_REGION", "SAGEMAKER_CONTAINER_LOG_LEVEL",
    "SAGEMAKER_MODEL_SERVER_WORKERS", "SAGEMAKER_MODEL_SERVER_TIMEOUT", "SAGETWIN_LOG_LEVEL",
})


class ForkedServer:
    """A model server forked by the warm parent: not this program's child, so it is polled
    through ``/proc`` and its exit code read from the file it writes on the way out."""

    def __init__(self, pid: int, log_dir: Path) -> None:
        self.pid = pid
        self.args = ["fork_server child", str(pid)]
        self.stdout = None
        self._exit_file = log_dir / EXIT_CODE_FILE
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            state = "gone"
        if state not in ("Z", "X", "gone"):
            return None
        try:
            self.returncode = int(self._exit_file.read_text())
        except (OSError, ValueError):
            self.returncode = -9  # killed before it could say
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode


class WarmParent:
    """One running ``fork_server`` and the environment it was started with."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        self.env = env
        self.proc = spawn([python, "-m", "sagetwin.emulation.fork_server"], env=env, stdin=subprocess.PIPE)
        self._ready = False

    def usable_for(self, env: dict[str, str]) -> bool:
        if self.proc.poll() is not None:
            return False
        keys = (set(env) | set(self.env)) - LOAD_TIME_VARIABLES
        return all(env.get(key) == self.env.get(key) for key in keys)

    def fork(self, order: dict[str, object], timeout: float) -> int:
        """The pid of a child serving ``order``; RuntimeError if the parent cannot make one."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if not self._ready:
            self._expect("ready", timeout)
            self._ready = True
        self.proc.stdin.write((json.dumps(order) + "\n").encode())
        self.proc.stdin.flush()
        return int(self._expect("pid", 30.0))

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
    """The warm parents of this program, one per serving Python."""

    def __init__(self) -> None:
        self._parents: dict[str, WarmParent] = {}
        self._lock = threading.Lock()

    def start_server(self, python: str, env: dict[str, str], model_dir: Path, port_file: Path, log: Path,
                     cwd: Path, timeout: float = PRELOAD_TIMEOUT_S) -> ForkedServer:
        """A model server for ``model_dir`` forked from the warm parent of ``python`` (started
        first if there is none, or if ``env`` differs from its own in what imports read)."""
        with self._lock:
            parent = self._parents.get(python)
            if parent is None or not parent.usable_for(env):
                if parent is not None:
                    parent.close()
                base = {k: v for k, v in env.items() if k not in LOAD_TIME_VARIABLES}
                parent = self._parents[python] = WarmParent(python, base)
            order = {"model_dir": str(model_dir), "port_file": str(port_file), "log": str(log), "cwd": str(cwd),
                     "env": env}
            try:
                pid = parent.fork(order, timeout)
            except (RuntimeError, OSError):
                parent.close()
                del self._parents[python]
                raise
        return ForkedServer(pid, log.parent)

    def close(self) -> None:
        with self._lock:
            parents, self._parents = list(self._parents.values()), {}
        for parent in parents:
            parent.close()


warm_servers = WarmServers()


def warm_serving_enabled() -> bool:
    """On unless ``SAGETWIN_WARM_SERVING=0`` (every deploy then starts a fresh interpreter)."""
    return os.environ.get("SAGETWIN_WARM_SERVING", "1") not in ("0", "false", "no") and sys.platform == "linux"
