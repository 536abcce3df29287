"""What a local image holds for one DLC stack: the Debian suite whose python3 has the DLC's
Python minor, the DLC's torch (the index's build), transformers and the toolkits at the DLC's
versions (``dlc_packages``); its content-addressed tag, and where it still differs from the
cloud DLC (parity)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from importlib import resources

from sagetwin.core.errors import ConfigurationError
from sagetwin.core.versions import Stack, default_stack
from sagetwin.emulation.dlc_packages import dlc_packages

# Debian release whose python3 has that minor version, and the Java multi-model-server runs on there
DEBIAN_SUITES = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
JAVA = {"bullseye": "openjdk-11-jre-headless", "bookworm": "openjdk-17-jre-headless",
        "trixie": "openjdk-21-jre-headless"}
CPU_TORCH = "2.13.0"  # SAGETWIN_LOCAL_TORCH=cpu: the slim CPU build this machine keeps (Python 3.11 only)
REPOSITORY = "sagetwin/huggingface-pytorch-{scope}"
FILES = "sagetwin.backends.local"

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

_ENV = ["ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV PYTHONUNBUFFERED=1", "ENV PYTHONDONTWRITEBYTECODE=1", "ENV HF_HUB_DISABLE_TELEMETRY=1"]
# The image's configuration, as `docker commit --change` instructions (the DLCs' own settings).
IMAGE_CONFIG = {
    # the PyTorch DLC's own: `train` hands the job to the PyTorch toolkit, which picks the launcher
    # (torchrun for distribution={"torch_distributed": ...}) as in the cloud
    "training": [*_ENV, "ENV SAGEMAKER_TRAINING_MODULE=sagemaker_pytorch_container.training:main",
                 "WORKDIR /opt/ml/code", "LABEL org.sagetwin.scope=training", 'CMD ["/bin/sh"]'],
    "inference": [*_ENV, "EXPOSE 8080", "LABEL org.sagetwin.scope=inference",
                  'ENTRYPOINT ["python3", "/usr/local/bin/dockerd-entrypoint.py"]', 'CMD ["serve"]'],
}


def nearest_python(wanted: str) -> str:
    """The Debian Python minor closest to ``wanted`` (3.10 → 3.11, 3.12 → 3.13): the newer one on a tie."""
    minor = int(wanted.split(".")[1])
    return min(DEBIAN_SUITES, key=lambda have: (abs(int(have.split(".")[1]) - minor), -int(have.split(".")[1])))


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
    known_stack: bool = True
    base_packages: tuple[str, ...] = field(default=())
    configured_base: str = ""  # SAGETWIN_BASE_IMAGE: a pullable image to start from instead of debootstrap

    @property
    def suite(self) -> str:
        return DEBIAN_SUITES[self.python]

    @property
    def cpu_torch(self) -> bool:
        return self.torch == CPU_TORCH and self.stack.pytorch != CPU_TORCH

    def files(self) -> dict[str, bytes]:
        """Files copied into the image: the install step, and the DLC's entrypoint for serving."""
        names = ["install.sh"] + (["dockerd-entrypoint.py"] if self.scope == "inference" else [])
        return {name: resources.files(FILES).joinpath(f"image_files/{name}").read_bytes() for name in names}

    def requirements(self) -> list[str]:
        return [f"torch=={self.torch}", *self.packages]

    def base_key(self) -> str:
        data = {"suite": self.suite, "packages": sorted(self.base_packages), "arch": platform.machine(),
                **({"configured": self.configured_base, "completion": COMPLETE_BASE} if self.configured_base else {})}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]

    def digest(self) -> str:
        recipe = {k: v for k, v in asdict(self).items() if k != "configured_base"}  # base_key() covers it
        data = {**recipe, "config": IMAGE_CONFIG[self.scope], "base": self.base_key(),
                "files": {k: hashlib.sha256(v).hexdigest() for k, v in self.files().items()}}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def wheelhouse_key(self) -> str:
        """Wheels depend on the requirements and the Python only, whatever the base."""
        data = {"requirements": self.requirements(), "python": self.python, "arch": platform.machine()}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def base_tag(self) -> str:
        if self.configured_base:
            name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in
                           self.configured_base.lower().rsplit("/", 1)[-1]).strip("-.")
            return f"sagetwin/base:{name}-{self.base_key()}"
        return f"sagetwin/base:{self.suite}-{self.base_key()}"

    @property
    def tag(self) -> str:
        return (f"{REPOSITORY.format(scope=self.scope)}:{self.stack.transformers}-pt{self.torch}"
                f"-py{self.python.replace('.', '')}-{self.digest()}")

    def parity(self) -> list[Parity]:
        gaps = []
        if self.python != self.stack.python:
            gaps.append(Parity("python", f"{self.python} (nearest Debian has)", self.stack.python))
        if self.torch != self.stack.pytorch:
            gaps.append(Parity("pytorch", f"{self.torch}" + (" (CPU build)" if self.cpu_torch else ""),
                               self.stack.pytorch))
        if not self.known_stack:
            gaps.append(Parity("toolkits", "newest on the index", "versions not in sagetwin's DLC table"))
        return gaps

    def parity_line(self) -> str:
        """``exact``, or each difference from the cloud DLC."""
        return "; ".join(g.render() for g in self.parity()) or "exact"


def local_torch(stack: Stack, choice: str | None = None) -> str:
    """The DLC's torch by default; ``cpu`` for the slim CPU build (a named difference); or a version."""
    choice = (choice or os.environ.get("SAGETWIN_LOCAL_TORCH") or "").strip()
    if not choice or choice in ("dlc", stack.pytorch):
        return stack.pytorch
    return CPU_TORCH if choice == "cpu" else choice


def recipe(scope: str, stack: Stack | None = None, *, torch: str | None = None) -> ImageRecipe:
    if scope not in IMAGE_CONFIG:
        raise ConfigurationError(f"unknown image scope {scope!r}.", "use 'training' or 'inference'.")
    stack = stack or default_stack()
    python = stack.python if stack.python in DEBIAN_SUITES else nearest_python(stack.python)
    packages, known = dlc_packages(scope, stack.transformers, stack.pytorch, stack.py)
    suite = DEBIAN_SUITES[python]
    base = ("python3", "python3-venv", "ca-certificates", JAVA[suite], "procps")
    return ImageRecipe(scope, stack, python, local_torch(stack, torch), tuple(p.requirement for p in packages),
                       known, base, configured_base=os.environ.get("SAGETWIN_BASE_IMAGE", ""))


def dlc_uri(scope: str, stack: Stack, region: str = "us-east-1") -> str:
    """The real DLC image URI for ``stack`` (used if that image is already present locally)."""
    from sagetwin.sagemaker_sdk.sdk import import_sdk

    sdk = import_sdk()
    return sdk.image_uris.retrieve("huggingface", region, version=stack.transformers,
                                   base_framework_version=f"pytorch{stack.pytorch}", py_version=stack.py,
                                   instance_type="ml.g4dn.xlarge" if scope == "inference" else "ml.p3.2xlarge",
                                   image_scope=scope)
