"""Local images at version parity with the Hugging Face DLCs, built without a registry.

The version matrix (``sagetwin.core.versions``) picks transformers and Python; the image runs
the same toolkits as the DLC (sagemaker-training's ``train``; the inference toolkit's
``serve`` on multi-model-server with Java). Builds need no network inside Docker:

1. base: the configured base image if it can be pulled, else Debian bootstrapped with
   ``debootstrap`` and ``docker import``-ed;
2. Python packages: a wheelhouse built on the host (``pip wheel``), ``COPY``-ed in and
   installed with ``--no-index``; ``docker build --network none``.

Tags are content-addressed (recipe + Dockerfile + base), so an unchanged rebuild is a no-op.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from sagetwin.core.errors import BackendUnavailableError, ConfigurationError, SagetwinError
from sagetwin.core.paths import home_dir
from sagetwin.core.progress import Reporter
from sagetwin.core.versions import Stack, default_stack

DEBIAN_SUITES = {"3.11": "bookworm", "3.13": "trixie"}  # Debian release whose python3 has that version
LOCAL_TORCH = os.environ.get("SAGETWIN_LOCAL_TORCH", "2.13.0")  # CPU build; the DLC's CUDA build is GBs
TOOLKITS = {
    # datasets 4 reads what datasets 4-5 on the host write (the `List` feature type)
    "training": ["sagemaker-training==5.1.4", "datasets>=4,<5", "accelerate>=0.26,<1.8", "scikit-learn",
                 "evaluate"],
    "inference": ["sagemaker-huggingface-inference-toolkit[mms]==2.6.0", "setuptools<81", "numpy<2"],
}
BASE_PACKAGES = ["python3", "python3-venv", "ca-certificates", "openjdk-17-jre-headless", "procps"]
REPOSITORY = "sagetwin/huggingface-pytorch-{scope}"


@dataclass(frozen=True)
class Parity:
    """Where the local image differs from the cloud DLC, component by component."""

    component: str
    local: str
    cloud: str

    def render(self) -> str:
        return f"{self.component} {self.local} (cloud DLC: {self.cloud})"


@dataclass(frozen=True)
class ImageRecipe:
    scope: str
    stack: Stack
    python: str
    torch: str
    packages: tuple[str, ...]
    base_packages: tuple[str, ...] = field(default=tuple(BASE_PACKAGES))
    configured_base: str = ""  # SAGETWIN_BASE_IMAGE: a pullable image to start from instead of debootstrap

    @property
    def suite(self) -> str:
        return DEBIAN_SUITES.get(self.python, "bookworm")

    def dockerfile(self) -> str:
        return resources.files("sagetwin.backends").joinpath(f"images/{self.scope}.Dockerfile").read_text()

    def extra_files(self) -> dict[str, bytes]:
        if self.scope == "inference":
            return {"dockerd-entrypoint.py": resources.files("sagetwin.backends")
                    .joinpath("images/dockerd-entrypoint.py").read_bytes()}
        return {}

    def requirements(self) -> list[str]:
        return [f"torch=={self.torch}", f"transformers=={self.stack.transformers}", *self.packages]

    def base_key(self) -> str:
        data = {"suite": self.suite, "packages": sorted(self.base_packages), "arch": platform.machine(),
                **({"configured": self.configured_base, "completion": COMPLETE_BASE} if self.configured_base else {})}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]

    def digest(self) -> str:
        recipe = {k: v for k, v in asdict(self).items() if k != "configured_base"}  # base_key() covers it
        data = {**recipe, "dockerfile": self.dockerfile(), "base": self.base_key(),
                "files": {k: hashlib.sha256(v).hexdigest() for k, v in self.extra_files().items()}}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def wheelhouse_key(self) -> str:
        """Wheels depend on the requirements and the Python only, whatever the base."""
        data = {"requirements": self.requirements(), "python": self.python, "arch": platform.machine()}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def base_tag(self) -> str:
        if self.configured_base:
            name = re.sub(r"[^a-z0-9_.-]+", "-", self.configured_base.lower().rsplit("/", 1)[-1]).strip("-.")
            return f"sagetwin/base:{name}-{self.base_key()}"
        return f"sagetwin/base:{self.suite}-{self.base_key()}"

    @property
    def tag(self) -> str:
        device = "cpu"
        return (f"{REPOSITORY.format(scope=self.scope)}:{self.stack.transformers}-{device}-py"
                f"{self.python.replace('.', '')}-{self.digest()}")

    def parity(self) -> list[Parity]:
        gaps = []
        if self.python != self.stack.python:
            gaps.append(Parity("python", self.python, self.stack.python))
        if self.torch.split("+")[0] != self.stack.pytorch:
            gaps.append(Parity("pytorch", f"{self.torch} (CPU build)", self.stack.pytorch))
        return gaps


def recipe(scope: str, stack: Stack | None = None, *, torch: str | None = None) -> ImageRecipe:
    if scope not in TOOLKITS:
        raise ConfigurationError(f"unknown image scope {scope!r}.", "use 'training' or 'inference'.")
    stack = stack or default_stack()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"  # wheels are built on this host
    return ImageRecipe(scope, stack, python, torch or LOCAL_TORCH, tuple(TOOLKITS[scope]),
                       configured_base=os.environ.get("SAGETWIN_BASE_IMAGE", ""))


# --------------------------------------------------------------------------- docker helpers


def docker(*args: str, check: bool = True, capture: bool = True, timeout: float | None = None
           ) -> subprocess.CompletedProcess:
    if shutil.which("docker") is None:
        raise BackendUnavailableError("the docker CLI is not installed.",
                                      "install Docker, or run scripts/docker-engine.sh (Debian's docker.io).")
    return subprocess.run(["docker", *args], check=check, capture_output=capture, text=True, timeout=timeout)


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


def _stream(cmd: list[str], reporter: Reporter, what: str, cwd: Path | None = None) -> None:
    """Run a build step, echoing output; a failure names the step and shows its last lines."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    step = what
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if not line:
            continue
        match = re.match(r"^(Step \d+/\d+ : .*)$", line)
        if match:
            step = f"{what}, {match.group(1)}"
            reporter.step(f"image: {match.group(1)[:110]}")
        reporter.log(line)
        tail = (tail + [line])[-25:]
    if proc.wait() != 0:
        raise SagetwinError(
            f"image build failed at: {step} (exit code {proc.returncode}).",
            "read the lines below; rerun `sagetwin image build` after fixing it.",
            details="\n".join("  | " + t for t in tail),
        )


# --------------------------------------------------------------------------- build steps


def ensure_base(rec: ImageRecipe, reporter: Reporter) -> str:
    """The base image: already built, else the configured one (pulled, completed with the OS
    packages the DLC contract needs), else Debian bootstrapped from Debian's packages."""
    if image_exists(rec.base_tag):
        return rec.base_tag
    if rec.configured_base:
        pulled = docker("pull", rec.configured_base, check=False, timeout=600)
        if pulled.returncode == 0 or image_exists(rec.configured_base):
            return complete_base(rec, reporter)
        reporter.step(f"image: cannot pull SAGETWIN_BASE_IMAGE={rec.configured_base} "
                      f"({pulled.stderr.strip()[:160]}); bootstrapping Debian instead")
        rec = dataclasses.replace(rec, configured_base="")
        if image_exists(rec.base_tag):
            return rec.base_tag
    if shutil.which("debootstrap") is None:
        raise BackendUnavailableError(
            "building a base image without a registry needs debootstrap, which is not installed.",
            "apt-get install debootstrap (scripts/docker-engine.sh installs it), or set SAGETWIN_BASE_IMAGE "
            "to a pullable image such as python:3.11-slim.",
        )
    with tempfile.TemporaryDirectory(prefix="sagetwin-rootfs-") as rootfs:
        reporter.step(f"image: debootstrap {rec.suite} with {', '.join(rec.base_packages)} (about a minute)")
        _stream(["debootstrap", "--variant=minbase", f"--include={','.join(rec.base_packages)}", rec.suite, rootfs,
                 "http://deb.debian.org/debian"], reporter, "debootstrap")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(Path(rootfs) / junk, ignore_errors=True)
        reporter.step(f"image: importing {rec.base_tag}")
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-", rec.base_tag], stdin=tar.stdout, capture_output=True,
                                  text=True)
        tar.wait()
        if imported.returncode != 0:
            raise SagetwinError(f"image build failed at: docker import of the base ({imported.stderr.strip()}).",
                                "check that the Docker engine has disk space (`sagetwin doctor`).")
    return rec.base_tag


# Run once on top of a configured base (python:3.11-slim, say): add what the DLC contract needs and
# the base lacks. The one build step that needs the network; people who can pull a base have it.
COMPLETE_BASE = r"""
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN missing=""; \
    command -v python3 >/dev/null || missing="$missing python3"; \
    python3 -c "import ensurepip, venv" 2>/dev/null || missing="$missing python3-venv"; \
    command -v java >/dev/null || missing="$missing openjdk-17-jre-headless"; \
    command -v ps >/dev/null || missing="$missing procps"; \
    if [ -n "$missing" ]; then \
      command -v apt-get >/dev/null || { echo "base image lacks:$missing (and has no apt-get)"; exit 1; }; \
      echo "installing:$missing"; \
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing \
        && rm -rf /var/lib/apt/lists/*; \
    fi
"""


def complete_base(rec: ImageRecipe, reporter: Reporter) -> str:
    reporter.step(f"image: completing the configured base {rec.configured_base} as {rec.base_tag}")
    with tempfile.TemporaryDirectory(prefix="sagetwin-base-") as ctx:
        (Path(ctx) / "Dockerfile").write_text(COMPLETE_BASE)
        _stream(["docker", "build", "--network", "host", "--build-arg", f"BASE_IMAGE={rec.configured_base}",
                 "-t", rec.base_tag, ctx], reporter, "docker build (completing the configured base)")
    return rec.base_tag


def build_wheelhouse(rec: ImageRecipe, target: Path, reporter: Reporter) -> Path:
    """Wheels for every requirement, built on the host for the image's Python (sdists become wheels)."""
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    if host != rec.python:
        raise ConfigurationError(f"the image needs Python {rec.python} wheels but this host runs Python {host}.",
                                 f"run `sagetwin image build` with Python {rec.python}.")
    marker = target / "requirements.txt"
    if marker.is_file():
        return target
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    reporter.step(f"image: building the wheelhouse for {rec.scope} ({', '.join(rec.requirements())})")
    _stream([sys.executable, "-m", "pip", "wheel", "--progress-bar", "off", "--wheel-dir", str(tmp),
             *rec.requirements()], reporter, "pip wheel")
    (tmp / "requirements.txt").write_text("\n".join(rec.requirements()) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def build(rec: ImageRecipe, reporter: Reporter, *, force: bool = False) -> str:
    """Build (or find) the image for ``rec``; returns its tag."""
    if not force and image_exists(rec.tag):
        reporter.step(f"image: {rec.tag} is up to date")
        return rec.tag
    base = ensure_base(rec, reporter)
    wheelhouse = build_wheelhouse(rec, home_dir() / "wheelhouse" / f"{rec.scope}-{rec.wheelhouse_key()}", reporter)
    with tempfile.TemporaryDirectory(prefix="sagetwin-build-") as ctx:
        context = Path(ctx)
        (context / "Dockerfile").write_text(rec.dockerfile())
        for name, content in rec.extra_files().items():
            (context / name).write_bytes(content)
        shutil.copytree(wheelhouse, context / "wheelhouse", copy_function=_link_or_copy)
        reporter.step(f"image: docker build {rec.tag} (no network inside the build)")
        _stream(["docker", "build", "--network", "none", "--build-arg", f"BASE_IMAGE={base}", "-t", rec.tag,
                 str(context)], reporter, "docker build")
    return rec.tag


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def dlc_uri(scope: str, stack: Stack, region: str = "us-east-1") -> str:
    """The real DLC image URI for ``stack`` (used if that image is already present locally)."""
    from sagetwin.backends._aws import import_sdk

    sdk = import_sdk()
    return sdk.image_uris.retrieve("huggingface", region, version=stack.transformers,
                                   base_framework_version=f"pytorch{stack.pytorch}", py_version=stack.py,
                                   instance_type="ml.g4dn.xlarge" if scope == "inference" else "ml.p3.2xlarge",
                                   image_scope=scope)


def choose_image(scope: str, stack: Stack | None, explicit: str | None, reporter: Reporter,
                 *, build_missing: bool = True) -> tuple[str, list[Parity]]:
    """explicit image_uri > the real DLC if present locally > an image sagetwin builds."""
    stack = stack or default_stack()
    if explicit:
        return explicit, []
    dlc = dlc_uri(scope, stack)
    if image_exists(dlc):
        return dlc, []
    rec = recipe(scope, stack)
    if not build_missing and not image_exists(rec.tag):
        raise ConfigurationError(f"the {scope} image {rec.tag} is not built yet.", "run `sagetwin image build`.")
    return build(rec, reporter), rec.parity()
