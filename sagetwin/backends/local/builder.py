"""Wheels for an image's Python, not the host's: built by the host's pip when the Pythons match,
else in a builder container made from the same base (the one step that may use the network;
the image itself is then assembled with none)."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from sagetwin.backends.local.docker import docker, engine_is_rootless
from sagetwin.backends.local.egress import index_only_network
from sagetwin.backends.local.recipes import ImageRecipe
from sagetwin.core.paths import building, home_folder
from sagetwin.core.progress import Reporter

Stream = Callable[[list[str], Reporter, str], None]
# The classic builder: BuildKit (the default since Docker 23) refuses a user-defined network for RUN
# steps, which the index-only build network is; its "Step N/M" lines are also what progress reads.
# --force-rm: a failed step's container is removed too (the classic builder keeps it by default)
DOCKER_BUILD = ["env", "DOCKER_BUILDKIT=0", "docker", "build", "--force-rm"]
BUILDER_PACKAGES = "build-essential python3-dev"  # sdists with C code (sagemaker-training) compile here
PIP_SETTINGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_TRUSTED_HOST", "PIP_CERT",
                "PIP_DEFAULT_TIMEOUT")


def build_wheelhouse(rec: ImageRecipe, reporter: Reporter, stream: Stream) -> Path:
    """Wheels for every requirement of ``rec`` (sdists become wheels), cached by requirements and Python."""
    target = home_folder("wheelhouse") / f"{rec.scope}-{rec.wheelhouse_key()}"
    if (target / "requirements.txt").is_file():
        return target
    shutil.rmtree(target, ignore_errors=True)  # a folder without the marker is an interrupted old build
    reporter.step(f"image: wheels for Python {rec.python}: {', '.join(rec.requirements())}")
    with building(target) as tmp:
        (tmp / "requirements.in").write_text("\n".join(rec.requirements()) + "\n")
        if f"{sys.version_info.major}.{sys.version_info.minor}" == rec.python:
            stream([sys.executable, "-m", "pip", "wheel", "--progress-bar", "off", "--wheel-dir", str(tmp),
                    "-r", str(tmp / "requirements.in")], reporter, "pip wheel")
        else:
            _wheels_in_builder(rec, tmp, reporter, stream)
        (tmp / "requirements.txt").write_text("\n".join(rec.requirements()) + "\n")
    return target


def builder_tag(rec: ImageRecipe) -> str:
    return rec.base_tag.replace("sagetwin/base:", "sagetwin/builder:", 1)


def _ensure_builder(rec: ImageRecipe, reporter: Reporter, stream: Stream, base: str) -> str:
    tag = builder_tag(rec)
    if docker("image", "inspect", tag).returncode == 0:
        return tag
    reporter.step(f"image: builder {tag} ({BUILDER_PACKAGES} from Debian {rec.suite})")
    context = home_folder("builder-context")
    (context / "Dockerfile").write_text(
        f"FROM {base}\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
        f"--no-install-recommends {BUILDER_PACKAGES} && rm -rf /var/lib/apt/lists/*\n")
    with index_only_network() as (network, proxy):
        stream([*DOCKER_BUILD, "--network", network, *build_args(proxy), "-t", tag, str(context)], reporter,
               "docker build (builder)")
    return tag


def _wheels_in_builder(rec: ImageRecipe, out: Path, reporter: Reporter, stream: Stream) -> None:
    builder = _ensure_builder(rec, reporter, stream, rec.base_tag)
    cache = home_folder("pip-cache", rec.python)
    mounts, env = _pip_settings()
    # what the container wrote as root, made the user's (under rootless Docker it is already: a chown
    # from inside would hand it to a subordinate uid, and sagetwin refuses folders it does not own)
    give_back = "" if engine_is_rootless() else f"chown -R {os.getuid()}:{os.getgid()} /out /cache; "
    script = ("python3 -m venv /tmp/pip && /tmp/pip/bin/pip install --quiet --upgrade pip wheel && "
              "/tmp/pip/bin/pip wheel --progress-bar off --wheel-dir /out -r /out/requirements.in; "
              f"code=$?; {give_back}exit $code")
    with index_only_network() as (network, proxy):
        proxy_env = [arg for key, value in proxy.items() for arg in ("-e", f"{key}={value}")]
        stream(["docker", "run", "--rm", "--network", network, "-v", f"{out}:/out", "-v", f"{cache}:/cache",
                "-e", "PIP_CACHE_DIR=/cache", *mounts, *env, *proxy_env, builder, "/bin/sh", "-c", script],
               reporter, f"pip wheel in {builder}")


def build_args(proxy: dict[str, str]) -> list[str]:
    """The proxy for a ``docker build``'s RUN steps (Docker's predefined build args: not kept in the image)."""
    return [arg for key, value in proxy.items() for arg in ("--build-arg", f"{key}={value}")]


def _pip_settings() -> tuple[list[str], list[str]]:
    """The person's pip settings (a mirror, local wheel folders) apply in the builder too."""
    mounts: list[str] = []
    env: list[str] = []
    for name in PIP_SETTINGS:
        value = os.environ.get(name)
        if not value:
            continue
        env += ["-e", f"{name}={value}"]
        for part in shlex.split(value):
            if os.path.isabs(part) and os.path.exists(part):
                mounts += ["-v", f"{part}:{part}:ro"]
    return mounts, env
