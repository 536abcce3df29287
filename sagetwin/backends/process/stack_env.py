"""``-o env=stack`` on the process backend: the job and its endpoint run in a cached virtualenv
with the stack's own packages (the DLC's torch, transformers, datasets, toolkits), so a script
written for transformers 4.x runs as it would on SageMaker, without Docker."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import sagetwin
from sagetwin.core.errors import ConfigurationError, SagetwinError, log_excerpt
from sagetwin.core.paths import home_folder
from sagetwin.core.progress import Reporter
from sagetwin.core.versions import Stack
from sagetwin.emulation.dlc_packages import dlc_packages

COMPLETE = ".sagetwin-complete"


def stack_requirements(stack: Stack) -> list[str]:
    """Training and serving packages of the stack in one environment (pip resolves them together)."""
    found: dict[str, str] = {"torch": f"torch=={stack.pytorch}", "pluggy": "pluggy"}
    for scope in ("training", "inference"):
        packages, _ = dlc_packages(scope, stack.transformers, stack.pytorch, stack.py)
        for package in packages:
            name = package.name.split("[")[0]
            found[name] = package.requirement if name not in found or package.pin else found[name]
    return sorted(found.values())


def stack_python(stack: Stack, reporter: Reporter) -> str:
    """The Python of the stack's environment, created (once) when missing."""
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    if host != stack.python:
        raise ConfigurationError(
            f"-o env=stack needs Python {stack.python} (the job's stack, {stack.describe()}); this host runs "
            f"Python {host}.",
            "run the job on --backend local, whose images have the stack's Python, or run sagetwin with "
            f"Python {stack.python}.")
    requirements = stack_requirements(stack)
    key = hashlib.sha256(json.dumps([host, requirements]).encode()).hexdigest()[:12]
    venv = home_folder("envs") / f"{stack.transformers}-pt{stack.pytorch}-{stack.py}-{key}"
    python = venv / "bin" / "python"
    if (venv / COMPLETE).is_file():
        return str(python)
    shutil.rmtree(venv, ignore_errors=True)  # an environment without the marker is an interrupted build
    reporter.step(f"process: creating the stack's environment {venv} ({', '.join(requirements)}; once)")
    _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    _run([str(python), "-m", "pip", "install", "--progress-bar", "off", *requirements], "pip install")
    _link_sagetwin(python)
    (venv / COMPLETE).write_text("\n".join(requirements) + "\n")
    return str(python)


def _link_sagetwin(python: Path) -> None:
    """sagetwin's own modules (the serving and audit entry points) without the host's other packages."""
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    link_dir = python.parent.parent / "sagetwin-link"
    link_dir.mkdir(exist_ok=True)
    (link_dir / "sagetwin").symlink_to(Path(sagetwin.__file__).resolve().parent, target_is_directory=True)
    (Path(purelib) / "sagetwin-link.pth").write_text(str(link_dir) + "\n")


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SagetwinError(f"creating the stack's environment failed at {what} (exit code {result.returncode}).",
                            "read the lines below; a network or index problem can be retried.",
                            details=log_excerpt("its output", "\n".join(
                                (result.stdout + result.stderr).splitlines()[-25:])))
