"""A job's run folder seen at ``/opt/ml``, as in a SageMaker container, for backends that run the
script as a process of this machine: the command is started in its own mount (and, unless we are
root, user) namespace where the run folder is bind-mounted on ``/opt/ml``, ``/etc/hosts`` names
the job's hosts (``algo-1``, ...) on loopback, and the host name is the job's. The rest of the file
system is the machine's: where ``/opt/ml`` does not exist, an overlay on ``/opt`` (its changes kept
in the run folder) gives the bind mount a place, and the machine's ``/opt`` is left as it is.

The lifeline a backend starts its commands under enters these namespaces first (``lifeline.py FD
--opt-ml RUN_FOLDER STATE_FOLDER HOST HOSTS WORKDIR -- command ...``: no interpreter more). Run as a
script it does the same and ``exec``s the command, which keeps its pid, group, signals and terminal::

    python -I -S container_paths.py RUN_FOLDER STATE_FOLDER HOST HOSTS WORKDIR -- command ...

``available()`` tells, once per process, whether this kernel lets us: where it does not, the
backend maps ``/opt/ml`` in hyperparameters and environment instead and says so.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import tempfile

OPT_ML = "/opt/ml"
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWUSER = 0x00020000, 0x04000000, 0x10000000
MS_RDONLY, MS_BIND, MS_REC, MS_PRIVATE = 0x1, 0x1000, 0x4000, 0x40000
_probed: dict[str, object] = {}


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    _check(libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(), flags,
                      data and data.encode()), f"mount {source} on {target}")


def _own_namespaces(libc: ctypes.CDLL) -> None:
    """New mount and UTS namespaces; a user namespace first where we are not root (our uid and gid
    mapped to themselves: files the job writes are ours outside, as before)."""
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        _check(libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
        return
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as out:
            out.write(text)


def _hosts_file(state: str, hosts: list[str]) -> str:
    path = os.path.join(state, "hosts")
    try:
        with open("/etc/hosts") as original:
            text = original.read()
    except OSError:
        text = "127.0.0.1\tlocalhost\n"
    with open(path, "w") as out:
        out.write(text.rstrip("\n") + "\n" + "".join(f"127.0.0.1\t{host}\n" for host in hosts))
    return path


def _place_for_opt_ml(libc: ctypes.CDLL, state: str) -> None:
    """``/opt/ml`` to mount on: it exists, or an overlay on ``/opt`` adds it (upper layer in ``state``)."""
    if os.path.isdir(OPT_ML):
        return
    if not os.path.isdir("/opt"):
        raise OSError(2, "/opt does not exist on this machine")
    upper, work = os.path.join(state, "opt-upper"), os.path.join(state, "opt-work")
    os.makedirs(upper, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    options = f"lowerdir=/opt,upperdir={upper},workdir={work}"
    try:
        _mount(libc, "overlay", "/opt", "overlay", 0, options)
    except OSError:  # unprivileged overlays keep their metadata in user xattrs
        _mount(libc, "overlay", "/opt", "overlay", 0, options + ",userxattr")
    os.makedirs(OPT_ML, exist_ok=True)  # already in the upper layer when a run starts again


def enter(run_folder: str, state: str, host: str, hosts: list[str], workdir: str) -> None:
    """Make this process see ``run_folder`` at /opt/ml, the hosts on loopback, ``host`` as its name."""
    libc = _libc()
    _own_namespaces(libc)
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here reaches the machine
    _place_for_opt_ml(libc, state)
    _mount(libc, run_folder, OPT_ML, None, MS_BIND | MS_REC)
    _mount(libc, _hosts_file(state, hosts), "/etc/hosts", None, MS_BIND)
    name = host.encode()
    _check(libc.sethostname(name, len(name)), "sethostname")
    os.chdir(workdir)


def command(cmd: list[str], *, run_folder: str, state: str, host: str, hosts: list[str], workdir: str) -> list[str]:
    """``cmd`` started in the job's namespaces (see the module's docstring)."""
    return [sys.executable, "-I", "-S", __file__, run_folder, state, host, ",".join(hosts), workdir, "--", *cmd]


def available() -> tuple[bool, str]:
    """Whether this kernel lets a job see its run folder at /opt/ml (and why not), probed once."""
    if "result" not in _probed:
        with tempfile.TemporaryDirectory(prefix="sagetwin-paths-") as scratch:
            run, state = os.path.join(scratch, "run"), os.path.join(scratch, "state")
            os.makedirs(os.path.join(run, "model"))
            os.makedirs(state)
            probe = command(["/bin/sh", "-c", "test -d /opt/ml/model && test \"$(hostname)\" = algo-1"],
                            run_folder=run, state=state, host="algo-1", hosts=["algo-1"], workdir="/")
            try:
                done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
                _probed["result"] = (done.returncode == 0, done.stderr.strip().splitlines()[-1:] or [""])
            except (OSError, subprocess.SubprocessError) as exc:
                _probed["result"] = (False, [str(exc)])
    ok, why = _probed["result"]  # type: ignore[misc]
    return bool(ok), str(why[0])


def main(argv: list[str]) -> None:
    split = argv.index("--")
    run_folder, state, host, hosts, workdir = argv[:split]
    cmd = argv[split + 1:]
    try:
        enter(run_folder, state, host, hosts.split(","), workdir)
    except OSError as exc:
        print(f"sagetwin: could not show the run folder at /opt/ml: {exc}", file=sys.stderr)
        sys.exit(125)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
