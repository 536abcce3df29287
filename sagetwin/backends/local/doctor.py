"""`sagetwin doctor` items of the local backend: Docker, compose, GPU, images and their parity,
leftovers of killed runs, disk space; each problem with its fix."""

from __future__ import annotations

import shutil
from pathlib import Path

from sagetwin.backends.local import images
from sagetwin.backends.local.containers import orphaned_containers
from sagetwin.backends.local.docker import compose_command, detect_gpu, docker_reachable, run
from sagetwin.core.backend import Check


def doctor_checks() -> list[Check]:
    ok, why = docker_reachable()
    items = [Check(ok, why, "start one: `bash scripts/docker-engine.sh` (installs Debian's docker.io if needed)",
                   name="local: Docker engine reachable")]
    if not ok:
        return items
    compose, version = compose_command()
    items.append(Check(compose is not None, version, "install docker-compose (Debian) or the docker compose v2 plugin",
                       name="local: docker compose"))
    if compose == ["docker-compose"]:
        items.append(Check(None, "docker-compose v1 rejects the `deploy:` key the SDK writes for local_gpu; "
                                 "`bash scripts/docker-engine.sh` installs the v2 plugin",
                           name="local: GPU containers need compose v2"))
    gpu = detect_gpu()
    items.append(Check(True, gpu.reason + ("; training uses local_gpu" if gpu.usable else "; training runs on the CPU"),
                       name="local: GPU for containers"))
    items += [_image_check(scope) for scope in ("training", "inference")]
    orphans = orphaned_containers()
    items.append(Check(not orphans, f"{len(orphans)} left: {', '.join(c[:12] for c in orphans)}" if orphans else "none",
                       "the next local fit or deploy removes them, or: docker rm -f " + " ".join(orphans),
                       name="local: no containers left by killed runs"))
    root = run(["docker", "info", "--format", "{{.DockerRootDir}}"]).stdout.strip() or "/var/lib/docker"
    free_gb = shutil.disk_usage(root if Path(root).exists() else "/").free / 1e9
    items.append(Check(free_gb >= 10, f"{free_gb:.0f} GB free under {root}",
                       "free at least 10 GB (`docker image prune`; old images: `docker images 'sagetwin/*'`)",
                       name="local: disk space for images"))
    return items


def _image_check(scope: str) -> Check:
    rec = images.recipe(scope)
    dlc = images.dlc_uri(scope, rec.stack)
    if images.image_exists(dlc):
        return Check(True, f"the real DLC {dlc} is present (exact parity)", name=f"local: {scope} image")
    present = images.image_exists(rec.tag)
    return Check(present, f"{rec.tag} ({'present' if present else 'not built'}); parity: {rec.parity_line()}",
                 "run `sagetwin image build` (a few minutes, no registry needed)", name=f"local: {scope} image")
