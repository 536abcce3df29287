"""Knowing when a local-mode serving container is ready, in place of the SDK's health check.

The SDK pings every 5 s for at most 120 s, and multi-model-server answers ``/ping`` before any
worker has loaded the model (and keeps answering when loading fails). The worker's own log line
is the real signal, so the container's log is followed as it is written: no polling of Docker,
the answer within milliseconds of the load, and a dead container or a failed load noticed at once.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from sagetwin.backends.local.containers import container_status
from sagetwin.emulation.processes import wait_until_healthy
from sagetwin.emulation.router_server import READY_LINE

MODEL_LOADED = "Model model loaded io_fd="  # an MMS worker finished loading (printed after the handler's init)
MODEL_LOAD_FAILED = ("Load model failed", "Could not load model", "Backend worker process died")
LOADED, FAILED, EXITED = "loaded", "failed", "exited"


class ContainerLogWatch:
    """Follows one container's log on a thread until the model loaded, failed to load, or the
    container stopped; ``outcome`` is then one of LOADED, FAILED, EXITED."""

    def __init__(self, container_id: str, *, follow: Sequence[str] = ("docker", "logs", "-f"),
                 status: Callable[[str], str] | None = None) -> None:
        self.container_id = container_id
        self._follow_command = [*follow, container_id]
        self._status = status or container_status
        self.outcome: str | None = None
        self._done = threading.Event()
        self._process: subprocess.Popen | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._follow, name=f"sagetwin-logs-{container_id[:12]}", daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> str | None:
        self._done.wait(max(timeout, 0))
        return self.outcome

    def close(self) -> None:
        self._closed = True
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def _finish(self, outcome: str) -> None:
        self.outcome = outcome
        self._done.set()

    def _follow(self) -> None:
        while not self._closed:
            # `docker logs -f` of a container that is created but not started yet returns at once.
            self._process = subprocess.Popen(self._follow_command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             text=True, errors="replace")
            assert self._process.stdout is not None
            for line in self._process.stdout:
                if MODEL_LOADED in line or READY_LINE in line:  # MMS's worker, or a TGI/TEI emulation
                    return self._finish(LOADED)
                if any(marker in line for marker in MODEL_LOAD_FAILED):
                    return self._finish(FAILED)
            self._process.wait()
            if self._status(self.container_id) not in ("created", "running", "restarting"):
                return self._finish(EXITED)
            time.sleep(0.1)


def wait_for_model(find_containers: Callable[[], list[str]], compose_running: Callable[[], bool],
                   serving_port: int, timeout: float) -> None:
    """Return once the serving container's worker loaded the model and ``/ping`` answers on the
    published port; raise RuntimeError naming what went wrong otherwise."""
    deadline = time.monotonic() + timeout
    while not (containers := find_containers()):
        if not compose_running():
            raise RuntimeError("docker compose exited before it created the serving container (its output is above)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"docker compose did not create the serving container within {timeout:.0f}s")
        time.sleep(0.1)
    watch = ContainerLogWatch(containers[0])
    try:
        outcome = watch.wait(deadline - time.monotonic())
    finally:
        watch.close()
    if outcome == FAILED:
        raise RuntimeError("the model failed to load in the serving container")
    if outcome == EXITED:
        raise RuntimeError("the serving container exited before the model was loaded")
    if outcome is None:
        raise RuntimeError(f"the model did not finish loading within {timeout:.0f}s")
    if not wait_until_healthy("127.0.0.1", serving_port, timeout=max(deadline - time.monotonic(), 10),
                              interval=0.05):
        raise RuntimeError(f"the model loaded but /ping on port {serving_port} did not answer 200")


# --------------------------------------------------------------------------- the SDK's compose threads


def compose_threads() -> set[threading.Thread]:
    """The SDK runs each endpoint's ``docker compose up`` on a ``_HostingContainer`` thread."""
    from sagemaker.local.image import _HostingContainer

    return {thread for thread in threading.enumerate() if isinstance(thread, _HostingContainer)}


def adopt(threads: set[threading.Thread]) -> None:
    """sagetwin reports a failed serving start itself (exit code, log tail), and removing the
    container on delete makes compose exit non-zero; either way the SDK's compose thread then
    raises into threading's excepthook, a traceback that tells the person nothing more. Keep the
    tracebacks of these threads out of their terminal; every other thread's still shows."""
    _install_adopted_filter()
    for thread in threads:
        thread.sagetwin_adopted = True  # type: ignore[attr-defined]


def _install_adopted_filter() -> None:
    previous = threading.excepthook
    if getattr(previous, "skips_adopted_threads", False):
        return

    def excepthook(args: threading.ExceptHookArgs) -> None:
        if not getattr(args.thread, "sagetwin_adopted", False):
            previous(args)

    excepthook.skips_adopted_threads = True  # type: ignore[attr-defined]
    threading.excepthook = excepthook


@contextlib.contextmanager
def fast_health_check(find_containers: Callable[[], list[str]], timeout: float) -> Iterator[None]:
    """Replace the SDK's health check (a /ping every 5 s, capped at 120 s) with one that follows the
    serving container's log until a worker loaded the model (:func:`wait_for_model`)."""
    from sagemaker.local import entities

    threads_before = compose_threads()

    def wait(serving_port: int | str) -> None:  # "127.0.0.1:PORT": the port as published
        ours = compose_threads() - threads_before  # started just before this call
        adopt(ours)
        wait_for_model(find_containers=find_containers, compose_running=lambda: any(t.is_alive() for t in ours),
                       serving_port=int(str(serving_port).rsplit(":", 1)[-1]), timeout=timeout)

    original = entities._wait_for_serving_container
    entities._wait_for_serving_container = wait
    try:
        yield
    finally:
        entities._wait_for_serving_container = original
