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
OVERLAYS_FILE = "overlays"  # in the state folder: folders the command may change without changing them
_probed: dict[int | None, tuple[bool, str]] = {}


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.unshare.argtypes = [ctypes.c_int]
    libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return libc


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    _check(libc.mount(source and os.fsencode(source), os.fsencode(target), fstype and fstype.encode(), flags,
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
    """The job's /etc/hosts, made new in ``state`` (never through a link)."""
    path = os.path.join(state, "hosts")
    try:
        with open("/etc/hosts") as original:
            text = original.read()
    except OSError:
        text = "127.0.0.1\tlocalhost\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as out:
        out.write(text.rstrip("\n") + "\n" + "".join(f"127.0.0.1\t{host}\n" for host in hosts))
    return path


def _overlay(libc: ctypes.CDLL, folder: str, state: str, name: str) -> None:
    """``folder`` writable in this namespace, its changes kept in ``state`` (``name``-upper/-work)
    and never reaching the machine: a container's own file system."""
    folder = os.path.realpath(folder)
    if any(char in folder for char in ",:\\"):
        raise OSError(22, f"{folder} has a character an overlay's options cannot hold")
    if (os.path.realpath(state) + "/").startswith(folder + "/"):  # layers may not sit inside their lower folder
        raise OSError(22, f"the run folder {state} is under {folder}, which an overlay covers")
    upper, work = os.path.join(state, f"{name}-upper"), os.path.join(state, f"{name}-work")
    os.mkdir(upper, 0o700)  # new: a folder someone else made is refused
    os.mkdir(work, 0o700)
    options = f"lowerdir={folder},upperdir={upper},workdir={work}"
    try:
        _mount(libc, "overlay", folder, "overlay", 0, options)
    except OSError:  # unprivileged overlays keep their metadata in user xattrs
        _mount(libc, "overlay", folder, "overlay", 0, options + ",userxattr")


def _place_for_opt_ml(libc: ctypes.CDLL, state: str) -> None:
    """``/opt/ml`` to mount on: it exists, or an overlay on ``/opt`` adds it (upper layer in ``state``)."""
    if os.path.isdir(OPT_ML):
        return
    if not os.path.isdir("/opt"):
        raise OSError(2, "/opt does not exist on this machine")
    _overlay(libc, "/opt", state, "opt")
    os.makedirs(OPT_ML, exist_ok=True)  # already in the upper layer when a run starts again


def _kept_unchanged(state: str) -> list[str]:
    """The folders ``state``'s ``overlays`` file names (one a line, written by the backend)."""
    try:
        fd = os.open(os.path.join(state, OVERLAYS_FILE), os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return []
    with os.fdopen(fd) as listing:
        return [line for line in listing.read().splitlines() if line]


def enter(run_folder: str, state: str, host: str, hosts: list[str], workdir: str) -> None:
    """Make this process see ``run_folder`` at /opt/ml, the hosts on loopback, ``host`` as its name."""
    libc = _libc()
    hosts_path = _hosts_file(state, hosts)
    _own_namespaces(libc)
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here reaches the machine
    # held before /opt may be covered (in this namespace: a bind mount takes its source from here)
    run_fd = os.open(run_folder, os.O_PATH | os.O_DIRECTORY)
    hosts_fd = os.open(hosts_path, os.O_PATH | os.O_NOFOLLOW)
    _place_for_opt_ml(libc, state)
    _mount(libc, f"/proc/self/fd/{run_fd}", OPT_ML, None, MS_BIND | MS_REC)
    _mount(libc, f"/proc/self/fd/{hosts_fd}", "/etc/hosts", None, MS_BIND)
    os.close(run_fd)
    os.close(hosts_fd)
    for index, folder in enumerate(_kept_unchanged(state)):  # e.g. the stack's environment: pip installs vanish
        _overlay(libc, folder, state, f"kept{index}")
    name = host.encode()
    _check(libc.sethostname(name, len(name)), "sethostname")
    os.chdir(workdir)


def command(cmd: list[str], *, run_folder: str, state: str, host: str, hosts: list[str], workdir: str) -> list[str]:
    """``cmd`` started in the job's namespaces (see the module's docstring)."""
    return [sys.executable, "-I", "-S", __file__, run_folder, state, host, ",".join(hosts), workdir, "--", *cmd]


def available(near: str | None = None) -> tuple[bool, str]:
    """Whether a job whose run folder is in ``near``'s file system can see it at /opt/ml, and this
    Python still runs there (why not, if not): probed once per file system."""
    key = os.stat(near).st_dev if near else None
    if key not in _probed:
        with tempfile.TemporaryDirectory(prefix=".sagetwin-paths-", dir=near) as scratch:
            run, state = os.path.join(scratch, "run"), os.path.join(scratch, "state")
            os.makedirs(os.path.join(run, "model"))
            os.makedirs(state)
            check = "import os, socket; assert os.path.isdir('/opt/ml/model') and socket.gethostname() == 'algo-1'"
            probe = command([sys.executable, "-I", "-S", "-c", check], run_folder=run, state=state, host="algo-1",
                            hosts=["algo-1"], workdir="/")
            try:
                done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
                _probed[key] = (done.returncode == 0, (done.stderr.strip().splitlines() or [""])[-1])
            except (OSError, subprocess.SubprocessError) as exc:
                _probed[key] = (False, str(exc))
            _writable(scratch)
    ok, why = _probed[key]  # type: ignore[misc]
    return bool(ok), str(why)


def _writable(folder: str) -> None:
    """The overlay's work folder is left mode 000 by the kernel: made removable again."""
    for root, dirs, _ in os.walk(folder):
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)


def release(state: str) -> None:
    """After the job: its state folder removable by its owner (see ``_writable``)."""
    if os.path.isdir(state):
        _writable(state)


def main(argv: list[str]) -> None:
    split = argv.index("--")
    run_folder, state, host, hosts, workdir = argv[:split]
    cmd = argv[split + 1:]
    try:
        enter(run_folder, state, host, hosts.split(","), workdir)
    except Exception as exc:  # never run the command outside its namespaces
        print(f"sagetwin: could not show the run folder at /opt/ml: {exc}", file=sys.stderr)
        sys.exit(125)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
