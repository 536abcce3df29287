"""A ``process`` endpoint's model server: forked from this program's warm parent (torch and
transformers already imported), else a fresh interpreter; where the kernel allows it, in
namespaces of its own where the model is at ``/opt/ml/model``, as the inference toolkit finds it in
SageMaker's container (an ``inference.py`` that opens ``/opt/ml/model/...`` literally works).
Stopping it takes away what it was given."""

from __future__ import annotations

import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagetwin.core.progress import Reporter
from sagetwin.emulation import container_paths
from sagetwin.emulation.contract import OPT_ML
from sagetwin.emulation.fork_server import EXIT_CODE_FILE
from sagetwin.emulation.http_endpoint import LocalHttpEndpoint
from sagetwin.emulation.processes import pump_to_file, spawn, stop
from sagetwin.emulation.router_server import ROUTER_MODULES
from sagetwin.emulation.warm_serving import ForkedServer, warm_servers, warm_serving_enabled

RUN_PREFIX, STATE_PREFIX = "opt_ml-", "container-"  # in the endpoint's folder, one of each per server


@dataclass
class ServerFolders:
    """One model server's run folder (seen at /opt/ml, holding the model as ``model``; None: no
    namespace) and the namespace state of each of its starts: its own, so stopping one server of
    an endpoint name never takes another's."""

    endpoint_dir: Path
    run: Path | None = None
    states: list[str] = field(default_factory=list)

    def namespace(self) -> tuple[str, ...]:
        """What ``spawn(opt_ml=...)`` takes, with a state folder new for this start (a failed
        start may have left files in the last one); the host name kept."""
        if self.run is None:
            return ()
        self.states.append(tempfile.mkdtemp(prefix=STATE_PREFIX, dir=self.endpoint_dir))
        host = socket.gethostname()
        return str(self.run), self.states[-1], host, host, str(self.endpoint_dir)

    def release(self) -> None:
        """Removed once the server is stopped (overlay folders made removable first)."""
        for state in self.states:
            container_paths.release(state)
            shutil.rmtree(state, ignore_errors=True)
        if self.run is not None:
            shutil.rmtree(self.run, ignore_errors=True)


def served_paths(endpoint_dir: Path, model_dir: Path, at_opt_ml: bool) -> tuple[str, ServerFolders]:
    """The model folder the server is told, and its folders. Not at /opt/ml where the endpoint's
    folder is itself under /opt/ml (sagetwin inside a container): the mount would hide the model."""
    endpoint_dir, model_dir = endpoint_dir.resolve(), model_dir.resolve()
    if not at_opt_ml or endpoint_dir.is_relative_to(OPT_ML):
        return str(model_dir), ServerFolders(endpoint_dir)
    run = Path(tempfile.mkdtemp(prefix=RUN_PREFIX, dir=endpoint_dir))
    (run / "model").symlink_to(model_dir, target_is_directory=True)
    return f"{OPT_ML}/model", ServerFolders(endpoint_dir, run)


SERVER_MODULES = {"inference-toolkit": "sagetwin.emulation.serving", **ROUTER_MODULES}


def server_command(python: str, server: str, model_dir: str, host: str, port: int, port_file: Path) -> list[str]:
    """The model server for ``server``: the inference toolkit's handler, or TGI's or TEI's
    contract (the LLM and embeddings containers)."""
    return [python, "-m", SERVER_MODULES[server], "--model-dir", model_dir, "--host", host, "--port", str(port),
            "--port-file", str(port_file)]


def start_model_server(cmd: list[str], env: dict[str, str], port_file: Path, log_path: Path, folders: ServerFolders,
                       port: int, timeout: float, reporter: Reporter, warm: bool = True) -> Any:
    """``cmd`` (``python -m sagetwin.emulation.serving --model-dir ...``) running: forked from
    the warm parent when ``warm`` and it can, else spawned; in its folders' namespace, if any.
    Where it cannot be started, its folders are removed."""
    endpoint_dir = folders.endpoint_dir
    (endpoint_dir / EXIT_CODE_FILE).unlink(missing_ok=True)
    try:
        if warm and warm_serving_enabled():
            reporter.step("process: starting model server, forked from this program's model-server parent (the "
                          f"first deploy starts it and imports torch and transformers once; log: {log_path})")
            try:
                return warm_servers.start_server(cmd[0], env, Path(cmd[cmd.index("--model-dir") + 1]), port_file,
                                                 log_path, endpoint_dir, port, timeout, opt_ml=folders.namespace())
            except (RuntimeError, OSError) as exc:
                reporter.step(f"process: the warm parent failed ({exc}); starting a fresh model server")
        reporter.step(f"process: starting model server (log: {log_path})")
        proc = spawn(cmd, env=env, cwd=endpoint_dir, opt_ml=folders.namespace())
    except BaseException:
        folders.release()
        raise
    pump_to_file(proc, log_path)
    return proc


def stop_server(proc: Any, grace: float = 10.0) -> int | None:
    """A model server stopped: a forked one by itself (its pid is checked to still be it), a
    spawned one with its process group."""
    return proc.stop(grace) if isinstance(proc, ForkedServer) else stop(proc, grace=grace)


def abandon_server(proc: Any, folders: ServerFolders) -> None:
    """A server that never became an endpoint stopped, and what it was given taken away (kept
    while it still runs: the next program's exit stops it)."""
    if stop_server(proc, grace=2.0) is not None:
        folders.release()


class ProcessEndpoint(LocalHttpEndpoint):
    """A model server subprocess on 127.0.0.1, spoken to over one keep-alive connection."""

    def __init__(self, name: str, host: str, port: int, proc: Any, folders: ServerFolders, timeout: float) -> None:
        work_dir = folders.endpoint_dir
        super().__init__(name, host, port, alive=lambda: proc.poll() is None,
                         log_hint=f"see {work_dir / 'server.log'}.", timeout=timeout)
        self.proc = proc
        self.work_dir = work_dir
        self.folders = folders

    def _release(self) -> None:
        if stop_server(self.proc) is not None:
            self.folders.release()
        shutil.rmtree(self.work_dir / "model", ignore_errors=True)
