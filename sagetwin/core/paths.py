"""Where sagetwin keeps caches and run folders, and how it writes them safely."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from sagetwin.core.errors import ConfigurationError

PRIVATE = 0o700  # models fetched from the twin's private S3, datasets, logs: this user's alone


def home_dir() -> Path:
    """``$SAGETWIN_HOME``, else ``$XDG_CACHE_HOME/sagetwin``, else ``~/.cache/sagetwin``: created
    0700 (and tightened if an earlier version left it open), as every folder sagetwin makes in it."""
    if os.environ.get("SAGETWIN_HOME"):
        path = Path(os.environ["SAGETWIN_HOME"]).expanduser()
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(cache) / "sagetwin"
    path.parent.mkdir(parents=True, exist_ok=True)
    _private_folder(path.resolve() if path.is_symlink() else path)  # a home moved elsewhere is still ours
    return path


def home_folder(*parts: str) -> Path:
    """``home_dir() / parts...``, each folder 0700: the one way sagetwin makes folders in its home."""
    return private_folders(home_dir(), *parts)


def private_folders(root: Path, *parts: str) -> Path:
    """``root / parts...``, each folder below ``root`` created 0700, or tightened to 0700 if an
    earlier version made it 0755 (a 022 umask): what sagetwin keeps is nobody else's to read.
    ``Path.mkdir(parents=True)`` would make the missing parents with the umask's mode."""
    root.mkdir(parents=True, exist_ok=True)
    path = root
    for part in parts:
        path = path / part
        _private_folder(path)
    return path


def _private_folder(path: Path) -> None:
    """Create ``path`` 0700, or tighten an existing folder of this user's; a symlink (a cache moved
    to a bigger disk) is left as it is. Someone else's folder is refused: whoever owns it could
    swap what sagetwin reads there (code, models, the twin's S3) for their own."""
    try:
        path.mkdir(mode=PRIVATE)
        return
    except FileExistsError:
        pass
    info = path.stat()  # through a symlink: the folder it leads to must be this user's too
    if info.st_uid != os.geteuid():
        raise ConfigurationError(
            f"the folder {path} belongs to another user (uid {info.st_uid}); sagetwin keeps code, models and "
            "S3 data there, which that user could change.",
            "set SAGETWIN_HOME to a folder of your own (or remove that one and let sagetwin create it).")
    if not path.is_symlink() and stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077:
        with contextlib.suppress(OSError):  # a file system without modes: nothing to tighten
            path.chmod(PRIVATE)


def unique_name(prefix: str) -> str:
    """A SageMaker-valid name (<= 63 chars, [a-zA-Z0-9-]) that sorts by time."""
    prefix = re.sub(r"[^a-zA-Z0-9-]+", "-", prefix).strip("-")[:30] or "sagetwin"
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:4]}"


def inside(parent: Path, name: str) -> Path:
    """``parent / name``, refused unless it stays inside ``parent``: a user-given name (a job, an
    endpoint, a channel) never reaches a folder sagetwin does not own."""
    target = Path(os.path.normpath(parent / name))  # lexically: a channel folder may be a symlink to the data
    if not name or os.path.isabs(name) or name in (".", "..") or target.parent != Path(os.path.normpath(parent)):
        raise ConfigurationError(f"the name {name!r} would leave the folder {parent}.",
                                 "use a plain name: letters, digits and hyphens (SageMaker's own rule).")
    return parent / name


@contextlib.contextmanager
def building(target: Path) -> Iterator[Path]:
    """Build a cache folder under a unique temporary name beside ``target`` and rename it into
    place when the block succeeds: readers never see half a folder, and two first-time builds
    never delete each other's work (the second one to finish keeps the first one's result)."""
    target.parent.mkdir(mode=PRIVATE, parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        try:
            tmp.rename(target)
        except OSError:
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def private_dir(path: Path) -> Path:
    """Create ``path`` as this user's alone (0700), or refuse one that is not: a symlink, or owned by
    someone else. What lives there (compose files, inputs, models) runs as root in Docker: nobody
    else may change it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ConfigurationError(f"the work folder {path} is a symlink or not yours.",
                                 "remove it (someone may have planted it), or pass -o work_dir=A_FOLDER_OF_YOURS.")
    if stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o700)
    return path
