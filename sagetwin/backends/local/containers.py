"""The containers a local run starts: which they are, what they said, removing them, and
finding those of runs that were killed before they could clean up."""

from __future__ import annotations

import os
from pathlib import Path

from sagetwin.backends.local.docker import Runner, run
from sagetwin.core.progress import Reporter

NETWORK = "sagemaker-local"
COMPOSE_DIR_LABEL = "com.docker.compose.project.working_dir"  # set by compose v1 and v2


def our_containers(image: str) -> set[str]:
    out = run(["docker", "ps", "-aq", "--no-trunc", "--filter", f"ancestor={image}"])
    return set(out.stdout.split()) if out.returncode == 0 else set()


def container_report(container_ids: set[str], lines: int = 30) -> tuple[int | None, str]:
    """Exit code and log tail of the first container that failed (or of any, if none failed)."""
    chosen, code = None, None
    for cid in sorted(container_ids):
        inspected = run(["docker", "inspect", "--format", "{{.State.ExitCode}}", cid])
        exit_code = int(inspected.stdout.strip()) if inspected.stdout.strip().isdigit() else None
        if chosen is None or (exit_code not in (None, 0) and code in (None, 0)):
            chosen, code = cid, exit_code
    if chosen is None:
        return None, ""
    logs = run(["docker", "logs", "--tail", str(lines), chosen], timeout=30)
    return code, (logs.stdout + logs.stderr).strip()


def remove_containers(container_ids: set[str]) -> None:
    if container_ids:
        run(["docker", "rm", "-f", "-v", *sorted(container_ids)], timeout=120)
    remove_network()


def remove_network() -> None:
    run(["docker", "network", "rm", NETWORK])  # fails harmlessly while something still uses it


def container_status(container_id: str) -> str:
    """Docker's status, except that a container whose process could not even start (a wrong
    entrypoint, say) stays "created" for ever: that one is "dead"."""
    out = run(["docker", "inspect", "--format", "{{.State.Status}}|{{.State.ExitCode}}|{{.State.Error}}",
               container_id])
    if out.returncode != 0:
        return "gone"
    status, code, error = (out.stdout.strip().split("|", 2) + ["", ""])[:3]
    return "dead" if status == "created" and (code not in ("", "0") or error) else status


def orphaned_containers(work_dir: Path, run: Runner = run) -> list[str]:
    """Containers the SDK's compose started under our work dir whose `compose up` no longer runs:
    the Python process that owned them was killed outright (SIGKILL, a closed pipe) before it
    could remove them. Nobody can reach them through sagetwin any more."""
    out = run(["docker", "ps", "-a", "--no-trunc", "--format", f'{{{{.ID}}}}\t{{{{.Label "{COMPOSE_DIR_LABEL}"}}}}'])
    ours = [line.split("\t", 1) for line in out.stdout.splitlines() if "\t" in line] if out.returncode == 0 else []
    ours = [(cid, folder) for cid, folder in ours if folder.startswith(str(work_dir) + os.sep)]
    if not ours:
        return []
    running = run(["ps", "-ww", "-eo", "args="]).stdout.splitlines()  # -ww: never cut to the terminal width
    live = [args for args in running if "compose" in args and "<defunct>" not in args]
    return [cid for cid, folder in ours if not any(f"{folder}{os.sep}docker-compose.yaml" in args for args in live)]


def reap_orphans(work_dir: Path, reporter: Reporter) -> None:
    orphans = orphaned_containers(work_dir)
    if orphans:
        remove_containers(set(orphans))
        reporter.step(f"local: removed {len(orphans)} container(s) left by a sagetwin run that was killed")


def give_back_to_user(path: Path, image: str) -> None:
    """Containers write as root into mounted folders; chown what they wrote to the invoking user."""
    uid, gid = os.getuid(), os.getgid()
    if uid == 0 or not path.exists():
        return
    run(["docker", "run", "--rm", "--network", "none", "-v", f"{path}:/target", "--entrypoint", "chown", image,
         "-R", f"{uid}:{gid}", "/target"], timeout=300)
