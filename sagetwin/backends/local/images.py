"""Building local images at version parity with the Hugging Face DLCs, without a registry.

The recipe (``recipes``) picks the versions (the DLC's Python minor, torch, transformers and
toolkits); the image runs the same toolkits as the DLC
(sagemaker-training's ``train``; the inference toolkit's ``serve`` on multi-model-server with
Java). Builds need no network inside Docker:

1. base: the configured base image if it can be pulled, else Debian bootstrapped with
   ``debootstrap`` and ``docker import``-ed;
2. Python packages: a wheelhouse built for the image's Python (``builder``), mounted into a
   container of the base with no network and installed with ``--no-index``; the container is
   committed with the DLC's configuration (``recipes.IMAGE_CONFIG``).

Tags are content-addressed (recipe + configuration + files + base), so an unchanged rebuild is a no-op.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from sagetwin.backends.local.builder import DOCKER_BUILD, build_args, build_wheelhouse
from sagetwin.backends.local.docker import docker
from sagetwin.backends.local.egress import index_only_network
from sagetwin.backends.local.recipes import COMPLETE_BASE, IMAGE_CONFIG, ImageRecipe, Parity, dlc_uri, recipe
from sagetwin.core.errors import BackendUnavailableError, ConfigurationError, SagetwinError, log_excerpt
from sagetwin.core.progress import Reporter
from sagetwin.core.versions import Stack, default_stack

__all__ = ["ImageRecipe", "Parity", "build", "choose_image", "dlc_uri", "image_exists", "link_or_copy", "recipe"]


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag).returncode == 0


def _stream(cmd: list[str], reporter: Reporter, what: str, cwd: Path | None = None) -> None:
    """Run a build step, echoing output; a failure names the step and shows its last lines."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    step = what
    started = step_started = time.monotonic()
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if not line:
            continue
        match = re.match(r"^(Step (\d+)/\d+ : .*)$", line)
        if match:
            if step != what:  # the step before this one is done: say how long it took
                reporter.step(f"image: {step.split(', ', 1)[1].split(' : ')[0]} took "
                              f"{time.monotonic() - step_started:.1f}s")
            step, step_started = f"{what}, {match.group(1)}", time.monotonic()
            reporter.step(f"image: {match.group(1)[:110]}")
        reporter.log(line)
        tail = (tail + [line])[-25:]
    if proc.wait() == 0:
        last = (f"{step.split(', ', 1)[1].split(' : ')[0]} took {time.monotonic() - step_started:.1f}s; "
                if step != what else "")
        reporter.step(f"image: {last}{what} done in {time.monotonic() - started:.1f}s")
    if proc.returncode != 0:
        raise SagetwinError(
            f"image build failed at: {step} (exit code {proc.returncode}).",
            "read the lines below; rerun `sagetwin image build` after fixing it.",
            details=log_excerpt("its output", "\n".join(tail)),
        )


def ensure_base(rec: ImageRecipe, reporter: Reporter) -> str:
    """The base image: already built, else the configured one (pulled, completed with the OS
    packages the DLC contract needs), else Debian bootstrapped from Debian's packages."""
    if image_exists(rec.base_tag):
        return rec.base_tag
    if rec.configured_base:
        pulled = docker("pull", rec.configured_base, timeout=600)
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
        assert tar.stdout is not None
        try:
            imported = subprocess.run(["docker", "import", "-", rec.base_tag], stdin=tar.stdout,
                                      capture_output=True, text=True)
        finally:
            tar.stdout.close()  # if docker import ends early, tar gets SIGPIPE instead of blocking for ever
            tar.wait()
        if imported.returncode != 0:
            raise SagetwinError(f"image build failed at: docker import of the base ({imported.stderr.strip()}).",
                                "check that the Docker engine has disk space (`sagetwin doctor`).")
    return rec.base_tag


def complete_base(rec: ImageRecipe, reporter: Reporter) -> str:
    reporter.step(f"image: completing the configured base {rec.configured_base} as {rec.base_tag}")
    with tempfile.TemporaryDirectory(prefix="sagetwin-base-") as ctx:
        (Path(ctx) / "Dockerfile").write_text(COMPLETE_BASE)
        with index_only_network() as (network, proxy):
            _stream([*DOCKER_BUILD, "--network", network, *build_args(proxy), "--build-arg",
                     f"BASE_IMAGE={rec.configured_base}", "-t", rec.base_tag, ctx], reporter,
                    "docker build (completing the configured base)")
    return rec.base_tag


def build(rec: ImageRecipe, reporter: Reporter, *, force: bool = False) -> str:
    """Build (or find) the image for ``rec``; returns its tag."""
    if not force and image_exists(rec.tag):
        return rec.tag  # the caller says which image it uses, and its parity
    ensure_base(rec, reporter)
    wheelhouse = build_wheelhouse(rec, reporter, _stream)
    _assemble(rec, wheelhouse, reporter)
    reporter.step(f"image: built {rec.tag} (parity: {rec.parity_line()})")
    return rec.tag


def _assemble(rec: ImageRecipe, wheelhouse: Path, reporter: Reporter) -> None:
    """Install the wheelhouse into a container of the base with no network, and commit it with the
    DLC's configuration: one layer, and the wheels themselves never enter the image."""
    name = f"sagetwin-build-{uuid.uuid4().hex[:12]}"
    docker("create", "--name", name, "--network", "none", "-v", f"{wheelhouse}:/wheelhouse:ro",
           rec.base_tag, "/bin/sh", "/tmp/sagetwin-files/install.sh", check=True)
    try:
        with tempfile.TemporaryDirectory(prefix="sagetwin-files-") as files:
            for file_name, content in rec.files().items():
                (Path(files) / file_name).write_bytes(content)
            docker("cp", f"{files}/.", f"{name}:/tmp/sagetwin-files", check=True)
        reporter.step(f"image: installing {len(rec.requirements())} requirements into {rec.tag} (no network)")
        _stream(["docker", "start", "-a", name], reporter, "installing the wheelhouse")
        changes = [arg for change in IMAGE_CONFIG[rec.scope] for arg in ("--change", change)]
        docker("commit", *changes, name, rec.tag, check=True, timeout=1800)
    finally:
        docker("rm", "-f", "-v", name, timeout=120)


def link_or_copy(src: str, dst: str) -> None:
    """Hard-link when the file system allows it (wheelhouses and inputs are large), else copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


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
