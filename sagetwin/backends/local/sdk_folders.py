"""The folders SDK local mode leaves in its container root: one ``tmp*`` folder per training job
or endpoint, holding the compose file and what the containers wrote (as root). Found by the run
label sagetwin puts in every compose file, so a concurrent run's folder is never touched."""

from __future__ import annotations

import shutil
from pathlib import Path

from sagetwin.backends.local.containers import OWNER_LABEL, RUN_LABEL, give_back_to_user, owner_gone
from sagetwin.core.progress import Reporter


def folders_of_run(container_root: Path, run_id: str) -> list[Path]:
    found = []
    for folder in container_root.glob("tmp*"):
        compose = folder / "docker-compose.yaml"
        try:
            text = compose.read_text()
        except OSError:
            continue
        if RUN_LABEL in text and run_id in text:  # 16 random hex digits: quoted or not, only ours match
            found.append(folder)
    return found


def remove_folders_of_run(container_root: Path, run_id: str, image: str) -> None:
    """Give what the containers wrote back to the user first: a non-root user cannot remove root's files."""
    for folder in folders_of_run(container_root, run_id):
        give_back_to_user(folder, image)
        shutil.rmtree(folder)


def reap_orphaned_folders(container_root: Path, reporter: Reporter | None = None) -> int:
    """Folders of runs whose owning process was killed outright (the owner label in their compose
    file names a process of this host that is gone); returns how many were removed."""
    removed = 0
    for folder in container_root.glob("tmp*"):
        found = _compose_values(folder / "docker-compose.yaml", (OWNER_LABEL, "image"))
        if found.get(OWNER_LABEL) and owner_gone(found[OWNER_LABEL]):
            if found.get("image"):
                give_back_to_user(folder, found["image"])
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if removed and reporter is not None:
        reporter.step(f"local: removed {removed} work folder(s) left by a sagetwin run that was killed")
    return removed


def _compose_values(compose: Path, keys: tuple[str, ...]) -> dict[str, str]:
    """The first value of each of ``keys`` in a compose file the SDK wrote (one service per run)."""
    try:
        lines = compose.read_text().splitlines()
    except OSError:
        return {}
    found: dict[str, str] = {}
    for line in lines:
        key, _, value = line.strip().partition(": ")
        key = key.strip("'\"")
        if key in keys and key not in found:
            found[key] = value.strip().strip("'\"")
    return found
