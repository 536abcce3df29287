"""A model-server parent kept warm: torch, transformers and the inference toolkit imported once,
then one forked child per endpoint. ``python -m sagetwin.emulation.fork_server``.

A fresh model server spends ~7 s of a deploy importing those packages (2 cores); a child forked
from here starts with them imported, so a redeploy after an edit to ``code/inference.py`` takes
about as long as loading the model. Each child loads its model and ``code/inference.py`` itself,
after the fork: nothing of one endpoint is seen by the next.

Protocol (one JSON object per line): after its imports it writes ``{"ready": true}``; each order
on stdin (``model_dir``, ``port_file``, ``log``, ``cwd``, ``env``) is answered with
``{"pid": N}``. When stdin closes (the program that started it is gone) every child is stopped
and this process exits. Children run in their own process group and exit when this process
does. Nothing here runs a tensor operation: the parent's thread pools are never started, so
forking is safe.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from sagetwin.emulation import container_paths

EXIT_CODE_FILE = "server.exit"  # a child's exit code, next to its log: the program cannot wait() for it
_children: set[int] = set()


def preload() -> None:
    """What every model server imports before it loads a model."""
    import torch  # noqa: F401
    import transformers.pipelines  # noqa: F401

    from sagetwin.emulation import serving

    serving._ensure_toolkit_compat()
    import mms.service  # noqa: F401
    from sagemaker_huggingface_inference_toolkit import handler_service  # noqa: F401


def _reap(*_: Any) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _children.discard(pid)


def _stop_children() -> None:
    for pid in list(_children):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while _children and time.monotonic() < deadline:
        _reap()
        time.sleep(0.05)
    for pid in list(_children):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os.killpg(0, signal.SIGTERM)


def _child(order: dict[str, Any], parent: int) -> None:
    """Become one endpoint's model server; never returns."""
    code = 1
    try:
        os.setpgid(0, 0)  # stopped as a group, like any server sagetwin starts
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        log = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        if order.get("opt_ml"):  # while this child has one thread, as unshare needs
            run_folder, state, host, hosts, workdir = order["opt_ml"]
            container_paths.enter(run_folder, state, host, hosts.split(","), workdir)
        os.chdir(order["cwd"])
        os.environ.clear()
        os.environ.update(order["env"])
        threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
        from sagetwin.emulation import serving

        sys.path[0] = order["cwd"]  # as for a fresh `python -m` started in the endpoint's folder
        serving.main(["--model-dir", order["model_dir"], "--host", order.get("host", "127.0.0.1"),
                      "--port", str(order.get("port", 0)), "--port-file", order["port_file"]])
        code = 0
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        if isinstance(exc.code, str):  # what the interpreter would print on its way out
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
            with open(os.path.join(os.path.dirname(order["log"]), EXIT_CODE_FILE), "w") as file:
                file.write(str(code))
        os._exit(code)


def main() -> None:
    preload()
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGTERM, lambda *_: (_stop_children(), os._exit(143)))
    print(json.dumps({"ready": True}), flush=True)
    parent = os.getpid()
    for line in sys.stdin:
        order = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # reaped only once it is counted
        pid = os.fork()
        if pid == 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            _child(order, parent)
        _children.add(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        print(json.dumps({"pid": pid}), flush=True)
    _stop_children()
    sys.stdout.flush()
    os._exit(0)  # at once: finalizing an interpreter with torch loaded takes seconds, and nothing is left to do


if __name__ == "__main__":
    main()
