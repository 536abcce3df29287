"""The folders SDK local mode makes for a run (its compose file, the channels' mount points, what
the containers wrote, as root). Each run gets its own container root, ``<work>/sdk/<run id>``, with
the owning process written beside it: removing a run's folders is removing that one folder, and a
folder whose owner was killed outright can be told from one a concurrent run still uses."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sagetwin.backends.local.containers import give_back_to_user, owner_gone, owner_of, remove_containers
from sagetwin.core.errors import SagetwinError
from sagetwin.core.paths import private_dir
from sagetwin.core.progress import Reporter

OWNER_FILE = "owner"


def run_root(work_dir: Path, run_id: str) -> Path:
    """Created (private, with its owner) for the run; the SDK makes its ``tmp*`` folders inside."""
    root = work_dir / "sdk" / run_id
    private_dir(root)
    (root / OWNER_FILE).write_text(owner_of(os.getpid()))
    return root


def remove_folders_of_run(work_dir: Path, run_id: str, image: str) -> None:
    """Give what the containers wrote back to the user first: a non-root user cannot remove root's files."""
    root = work_dir / "sdk" / run_id
    if root.exists():
        give_back_to_user(root, image)
        shutil.rmtree(root)


def tidy_after_run(work_dir: Path, run_id: str, image: str, *, containers: set[str], output: Path,
                   failure: BaseException | None) -> None:
    """Containers removed, outputs made the user's, the SDK's folders removed: each step tried
    whatever the others did. A problem is raised if the run went well; after a failed or
    interrupted run it is a note on that error, which stays the one raised."""
    problems = []
    for step in (lambda: remove_containers(containers), lambda: give_back_to_user(output, image),
                 lambda: remove_folders_of_run(work_dir, run_id, image)):
        try:
            step()
        except SagetwinError as exc:
            problems.append(exc)
    if problems and failure is None:
        raise problems[0]
    for problem in problems:
        failure.add_note(f"sagetwin: also, {problem.render()}")  # type: ignore[union-attr]


def reap_orphaned_folders(work_dir: Path, reporter: Reporter | None = None) -> int:
    """Folders of runs whose owning process was killed outright; returns how many were removed."""
    removed = 0
    for root in sorted((work_dir / "sdk").glob("*")):
        try:
            owner = (root / OWNER_FILE).read_text().strip()
        except OSError:
            continue
        if owner_gone(owner):
            try:
                if image := _image_of(root):
                    give_back_to_user(root, image)
            except SagetwinError as exc:  # one folder that cannot be removed must not stop every run
                if reporter is not None:
                    reporter.step(f"local: could not remove {root} left by a killed run: {exc.render()}")
            shutil.rmtree(root, ignore_errors=True)
            removed += not root.exists()
    if removed and reporter is not None:
        reporter.step(f"local: removed {removed} work folder(s) left by a sagetwin run that was killed")
    return removed


def _image_of(root: Path) -> str:
    """The image the run's compose file names: the one to chown with (it is on this engine)."""
    for compose in root.glob("tmp*/docker-compose.yaml"):
        for line in compose.read_text().splitlines():
            key, _, value = line.strip().partition(": ")
            if key == "image" and value.strip():
                return value.strip().strip("'\"")
    return ""
