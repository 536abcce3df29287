"""Where this host's Python packages differ from the job's target stack (the DLC's), so a failure
on ``process`` that the cloud would not have is named as what it is."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata

from sagetwin.core.versions import Stack
from sagetwin.emulation.dlc_packages import dlc_packages


@dataclass(frozen=True)
class Drift:
    package: str
    here: str
    target: str

    def render(self) -> str:
        return f"{self.package} {self.here} here, {self.target} in the job's stack"


def installed(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _same(here: str, target: str) -> bool:
    """``2.13.0+cpu`` is 2.13.0; a range target (``<2``) is not judged here."""
    return here.split("+")[0] == target or not target[:1].isdigit()


def target_versions(stack: Stack) -> dict[str, str]:
    """Python, transformers, torch and datasets of the job's stack (datasets where the DLC table has it)."""
    wanted = {"python": stack.python, "transformers": stack.transformers, "torch": stack.pytorch}
    packages, _ = dlc_packages("training", stack.transformers, stack.pytorch, stack.py)
    for package in packages:
        if package.name == "datasets" and package.pin.startswith("=="):
            wanted["datasets"] = package.pin[2:]
    return wanted


def drift(stack: Stack) -> list[Drift]:
    here = {"python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    found = []
    for package, target in target_versions(stack).items():
        version = here.get(package) or installed(package)
        if not _same(version, target):
            found.append(Drift(package, version, target))
    return found


def drift_fix(found: list[Drift], stack: Stack) -> str:
    """What to do when a script fails on a host that differs from the stack."""
    named = "; ".join(d.render() for d in found)
    python_matches = not any(d.package == "python" for d in found)
    own_env = "`-o env=stack` (a cached virtualenv with the stack's packages)" if python_matches else \
        f"a Python {stack.python} environment with the stack's packages"
    return (f"this host differs from the job's stack ({named}): the error may not happen on SageMaker. "
            f"Run it on `--backend local` (images at the DLC's versions), or on process with {own_env}.")
