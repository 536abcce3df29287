"""What a local image holds: the recipe (base, Python, torch, transformers, toolkits) for one
DLC stack, its content-addressed tag, and where it differs from the cloud DLC (parity)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
from dataclasses import asdict, dataclass, field
from importlib import resources

from sagetwin.core.errors import ConfigurationError
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
        return resources.files("sagetwin.backends.local").joinpath(f"dockerfiles/{self.scope}.Dockerfile").read_text()

    def extra_files(self) -> dict[str, bytes]:
        if self.scope == "inference":
            return {"dockerd-entrypoint.py": resources.files("sagetwin.backends.local")
                    .joinpath("dockerfiles/dockerd-entrypoint.py").read_bytes()}
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

    def parity_line(self) -> str:
        """``exact``, or each difference from the cloud DLC."""
        return "; ".join(g.render() for g in self.parity()) or "exact"

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


def dlc_uri(scope: str, stack: Stack, region: str = "us-east-1") -> str:
    """The real DLC image URI for ``stack`` (used if that image is already present locally)."""
    from sagetwin.backends.aws.sdk import import_sdk

    sdk = import_sdk()
    return sdk.image_uris.retrieve("huggingface", region, version=stack.transformers,
                                   base_framework_version=f"pytorch{stack.pytorch}", py_version=stack.py,
                                   instance_type="ml.g4dn.xlarge" if scope == "inference" else "ml.p3.2xlarge",
                                   image_scope=scope)
