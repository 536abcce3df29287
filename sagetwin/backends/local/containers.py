"""The containers a local run starts: which they are, what they said, removing them, and
finding those of runs that were killed before they could clean up."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from sagetwin.backends.local.docker import Runner, engine_is_rootless, run
from sagetwin.core.errors import SagetwinError
from sagetwin.core.progress import Reporter

NETWORK = "sagemaker-local"
RUN_LABEL = "org.sagetwin.run"  # which fit or deploy started the container
OWNER_LABEL = "org.sagetwin.owner"  # "<host> <pid> <start time>" of the process that started it


def new_run_labels() -> tuple[str, dict[str, str]]:
    """A run id, and the labels every container of that run carries (set through the SDK's own
    ``local.container_config``): cleanup acts on these labels only, never on what merely shares an image."""
    run_id = uuid.uuid4().hex[:16]
    return run_id, {RUN_LABEL: run_id, OWNER_LABEL: owner_of(os.getpid())}


def owner_of(pid: int) -> str:
    return f"{socket.gethostname()} {pid} {_start_time(pid)}"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot: with the pid, it names one process for ever."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def owner_gone(owner: str) -> bool:
    """True only for an owner on this host that no longer runs; another host's containers are not ours to judge."""
    parts = owner.split()
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    return owner_of(int(parts[1])) != owner


def our_containers(run_id: str) -> set[str]:
    out = run(["docker", "ps", "-aq", "--no-trunc", "--filter", f"label={RUN_LABEL}={run_id}"])
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
    """Remove them, or say which could not be removed (the engine gone, say): never report a
    removal that did not happen."""
    if container_ids:
        done = run(["docker", "rm", "-f", "-v", *sorted(container_ids)], timeout=120)
        gone = ("No such container", "is already in progress")  # removed, or being removed already
        left = [line for line in done.stderr.splitlines() if line.strip() and not any(g in line for g in gone)]
        if done.returncode != 0 and left:
            names = ", ".join(c[:12] for c in sorted(container_ids))
            raise SagetwinError(
                f"container(s) {names} could not be removed: {left[-1][:200]}",
                "once the Docker engine answers again, the next local run removes them (`sagetwin doctor` lists "
                "them), or run `docker rm -f` on them yourself.")
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


def orphaned_containers(run: Runner = run) -> list[str]:
    """Containers sagetwin started whose owning process on this host is gone: it was killed
    outright (SIGKILL, a closed pipe) before it could remove them. Nobody can reach them through
    sagetwin any more. Containers another machine started on a shared engine are left alone."""
    out = run(["docker", "ps", "-a", "--no-trunc", "--filter", f"label={OWNER_LABEL}", "--format",
               f'{{{{.ID}}}}\t{{{{.Label "{OWNER_LABEL}"}}}}'])
    rows = [line.split("\t", 1) for line in out.stdout.splitlines() if "\t" in line] if out.returncode == 0 else []
    return [cid for cid, owner in rows if owner_gone(owner)]


def reap_orphans(reporter: Reporter) -> None:
    orphans = orphaned_containers()
    if orphans:
        remove_containers(set(orphans))
        reporter.step(f"local: removed {len(orphans)} container(s) left by a sagetwin run that was killed")


def give_back_to_user(path: Path, image: str, run: Runner = run) -> None:
    """Containers write as root into mounted folders; make what they wrote the invoking user's.
    Under rootless Docker it already is. A failure is an error naming the folder and the fix:
    files the user cannot remove must not be left silently."""
    uid, gid = os.getuid(), os.getgid()
    if uid == 0 or not path.exists() or engine_is_rootless(run):
        return
    result = run(["docker", "run", "--rm", "--network", "none", "-v", f"{path}:/target", "--entrypoint", "chown",
                  image, "-R", f"{uid}:{gid}", "/target"], timeout=300)
    foreign = not_owned_by(path, uid)
    if result.returncode != 0 or foreign:
        detail = (result.stderr.strip().splitlines() or [""])[-1][:200] if result.returncode != 0 else ""
        raise SagetwinError(
            f"the files the container wrote under {path} could not be given back to you (uid {uid})"
            + (f": {detail}" if detail else "") + (f"; still not yours: {foreign[0]}" if foreign else "") + ".",
            f"run `sudo chown -R {uid}:{gid} {path}`, and check that the Docker engine can run `{image}`.",
        )


def not_owned_by(path: Path, uid: int, limit: int = 1) -> list[str]:
    """Up to ``limit`` paths under ``path`` (itself included) whose owner is not ``uid``."""
    found: list[str] = []
    for entry in [path, *path.rglob("*")]:
        try:
            if entry.lstat().st_uid != uid:
                found.append(str(entry))
        except OSError:
            continue
        if len(found) >= limit:
            break
    return found
