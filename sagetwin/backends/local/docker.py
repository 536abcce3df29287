"""The one way the local backend runs Docker (and other host tools), and what it asks of them:
is an engine there, which compose, which GPU."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sagetwin.core.errors import BackendUnavailableError, SagetwinError
from sagetwin.emulation.contract import gpus_listed

Runner = Callable[..., subprocess.CompletedProcess]


def run(cmd: list[str], timeout: float | None = 10) -> subprocess.CompletedProcess:
    """Run a host command and capture its output; a missing program or a timeout is exit code 127."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(cmd, 127, "", str(exc))


def docker(*args: str, check: bool = False, timeout: float | None = 60) -> subprocess.CompletedProcess:
    """``docker ARGS``; with ``check``, a failure is a SagetwinError naming the command and Docker's words."""
    if shutil.which("docker") is None:
        raise BackendUnavailableError("the docker CLI is not installed.",
                                      "install Docker, or run scripts/docker-engine.sh (Debian's docker.io).")
    result = run(["docker", *args], timeout=timeout)
    if check and result.returncode != 0:
        raise SagetwinError(f"`docker {' '.join(args[:3])}` failed: {result.stderr.strip()[-300:]}",
                            "check the Docker engine with `sagetwin doctor`.")
    return result


def docker_reachable(run: Runner = run) -> tuple[bool, str]:
    if shutil.which("docker") is None:
        return False, "the docker CLI is not installed"
    result = run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=10)
    if result.returncode != 0:
        return False, "Docker not reachable (" + (result.stderr.strip().splitlines() or ["no answer"])[-1][:160] + ")"
    return True, f"Docker {result.stdout.strip()}"


def engine_lost(during: str, run: Runner = run) -> BackendUnavailableError | None:
    """After a failed run: the error to raise if the reason is that the Docker engine went away
    (the script is not to blame, and the fix is elsewhere), else None."""
    reachable, why = docker_reachable(run)
    if reachable:
        return None
    return BackendUnavailableError(
        f"the Docker engine stopped answering during {during} ({why}); its containers stopped with it.",
        "start the engine again (scripts/docker-engine.sh, or `sudo systemctl start docker`) and rerun: the next "
        "local run removes what the stopped one left (`sagetwin doctor` lists it).")


@functools.lru_cache(maxsize=4)
def engine_is_rootless(run: Runner = run) -> bool:
    """Rootless Docker maps a container's root to the invoking user, so what containers write is
    already the user's; a ``chown`` to the user's uid from inside would map it to a subordinate uid."""
    result = run(["docker", "info", "--format", "{{json .SecurityOptions}}"])
    return result.returncode == 0 and "name=rootless" in result.stdout


@functools.lru_cache(maxsize=4)
def compose_command(run: Runner = run) -> tuple[list[str] | None, str]:
    """``docker compose`` when it is v2 or later, else ``docker-compose``. By the version number:
    the SDK looks for the text "v2", which Debian's plugin ("version 2.26.1-4") does not print.
    Cached per process: starting docker-compose v1 just to read its version takes half a second."""
    v2 = run(["docker", "compose", "version"])
    if v2.returncode == 0 and re.search(r"version v?([2-9]|\d\d+)\.", v2.stdout):
        return ["docker", "compose"], v2.stdout.strip()
    if shutil.which("docker-compose"):
        v1 = run(["docker-compose", "version", "--short"])
        return ["docker-compose"], f"docker-compose {v1.stdout.strip()}"
    return None, "neither `docker compose` (v2) nor `docker-compose` is installed"


@dataclass(frozen=True)
class GpuInfo:
    usable: bool
    reason: str
    gpus: int = 0


def detect_gpu(run: Runner = run, cdi_dirs: tuple[str, ...] = ("/etc/cdi", "/var/run/cdi")) -> GpuInfo:
    """An NVIDIA GPU Docker can use: nvidia-smi lists one and the engine has the nvidia runtime or CDI."""
    smi = run(["nvidia-smi", "--list-gpus"])
    gpus = gpus_listed(smi.stdout) if smi.returncode == 0 else 0
    if gpus == 0:
        return GpuInfo(False, "no NVIDIA GPU (nvidia-smi lists none)")
    runtimes = run(["docker", "info", "--format", "{{json .Runtimes}}"])
    try:
        has_runtime = "nvidia" in json.loads(runtimes.stdout or "{}")
    except ValueError:
        has_runtime = False
    has_cdi = any(Path(d).is_dir() and any("nvidia" in p.name for p in Path(d).iterdir()) for d in cdi_dirs)
    if has_runtime or has_cdi:
        return GpuInfo(True, f"{gpus} NVIDIA GPU(s), Docker {'nvidia runtime' if has_runtime else 'CDI'}", gpus)
    return GpuInfo(False, f"{gpus} NVIDIA GPU(s) but Docker has no nvidia runtime or CDI spec "
                          "(install the NVIDIA Container Toolkit)", gpus)


@contextlib.contextmanager
def sdk_compose(command: list[str]) -> Iterator[None]:
    """Make SDK local mode run ``command`` as its compose for a while (it would pick docker-compose
    v1 over a v2 plugin whose version lacks the text "v2", and v1 rejects local_gpu's ``deploy:``),
    with the erase-line code compose v2 puts before every log line (``--ansi never`` or not) taken
    out of what the SDK prints."""
    from sagemaker.local import image
    from sagemaker.local.image import _SageMakerContainer

    original = _SageMakerContainer.__dict__["_get_compose_cmd_prefix"]
    original_stream = image._stream_output
    _SageMakerContainer._get_compose_cmd_prefix = staticmethod(lambda: list(command))
    image._stream_output = lambda process: original_stream(_WithoutEraseLine(process))
    try:
        yield
    finally:
        _SageMakerContainer._get_compose_cmd_prefix = original
        image._stream_output = original_stream


# compose's prefix of a container's line: SDK local mode names containers "<10 chars>-algo-N-<5 chars>"
_COMPOSE_PREFIX = re.compile(rb"^(?:[a-z0-9]+-)?(algo-\d+)-[a-z0-9]{5}\s*\| ?")


class _WithoutEraseLine:
    """A compose process whose output lines lose compose v2's ``ESC[2K`` and the carriage return
    of the containers' terminal, and name their host as SageMaker does (``algo-1 | text``, see
    ``core.host_lines``) instead of by compose's container name; the rest is the process's."""

    def __init__(self, process: subprocess.Popen) -> None:
        self._process = process
        self.stdout = self

    def readline(self) -> bytes:
        line = self._process.stdout.readline().replace(b"\x1b[2K", b"")  # type: ignore[union-attr]
        ending = b"\n" if line.endswith(b"\n") else b""
        line = line.rstrip(b"\r\n")
        return _COMPOSE_PREFIX.sub(rb"\1 | ", line, count=1) + ending

    def __getattr__(self, name: str) -> object:
        return getattr(self._process, name)


def preferred_compose() -> contextlib.AbstractContextManager:
    """Compose v2 whenever it is installed (see ``sdk_compose``): GPU runs need it, and for every
    run it starts in 0.1 s where docker-compose v1 takes 0.9 s of a busy CPU. Else the SDK's choice."""
    compose, _ = compose_command()
    if compose != ["docker", "compose"]:
        return contextlib.nullcontext()
    plain = [] if sys.stdout.isatty() else ["--ansi", "never"]  # no cursor codes in logs and CI output
    return sdk_compose([*compose, *plain])
