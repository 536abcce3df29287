"""Input channels as SageMaker gives them to a job: the job's own copy of the data (copy-on-write
where the file system has it), so a script that writes into its input never changes the person's
data; a channel too big to copy is linked, and the caller is told."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

from sagetwin.core.errors import ConfigurationError

COPY_LIMIT_ENV = "SAGETWIN_CHANNEL_COPY_LIMIT_MB"


def channel_copy_limit() -> int:
    """Bytes up to which a channel is copied (``$SAGETWIN_CHANNEL_COPY_LIMIT_MB``, default 4096)."""
    value = os.environ.get(COPY_LIMIT_ENV, "4096")
    try:
        return int(float(value) * 1_000_000)
    except ValueError:
        raise ConfigurationError(f"{COPY_LIMIT_ENV}={value!r} is not a number of megabytes.",
                                 f"set e.g. {COPY_LIMIT_ENV}=4096, or unset it.") from None


def _size(source: Path) -> int:
    """Bytes a copy would take, symlinked folders included (the copy follows them)."""
    if source.is_file():
        return source.stat().st_size
    total = 0
    for folder, _, files in os.walk(source, followlinks=True):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:  # a dangling link: nothing to copy
                continue
    return total


def _copy(source: Path, target: Path) -> None:
    """``cp --reflink=auto``: copy-on-write (instant, no space) on btrfs/XFS, a plain copy elsewhere;
    Python's own copy where that ``cp`` is not GNU's."""
    source = source.resolve()
    contents = [source] if source.is_file() else list(source.iterdir())
    cp = shutil.which("cp")
    if cp and contents:
        destination = target if source.is_dir() else target.parent
        done = subprocess.run([cp, "-R", "-L", "--reflink=auto", "--", *map(str, contents), str(destination)],
                              capture_output=True, text=True)
        if done.returncode == 0:
            return
        if "No space left on device" in done.stderr:
            raise OSError(errno.ENOSPC, f"copying {source}: {done.stderr.strip()}")
        if "reflink" not in done.stderr and "unrecognized option" not in done.stderr:
            raise OSError(errno.EIO, f"copying {source}: {done.stderr.strip()}")
    if source.is_file():
        shutil.copy2(source, target)
    else:
        shutil.copytree(source, target, dirs_exist_ok=True)


def expose(channel: str, source: Path, target: Path, copy_limit: int | None = None) -> str | None:
    """``source`` (a folder or a file) as the channel folder ``target``: a copy, or above
    ``copy_limit`` bytes a symlink, which the returned note explains."""
    if target.is_symlink() or target.exists():
        if target.is_symlink() or target.is_file():
            target.unlink()
        else:
            shutil.rmtree(target)
    limit = channel_copy_limit() if copy_limit is None else copy_limit
    size = _size(source)
    if size <= limit:
        target.mkdir(parents=True)
        _copy(source, target / source.name if source.is_file() else target)
        return None
    if source.is_file():
        target.mkdir(parents=True)
        (target / source.name).symlink_to(source.resolve())
    else:
        target.symlink_to(source.resolve(), target_is_directory=True)
    return (f"channel {channel} ({size / 1e9:.1f} GB) is linked to {source}, not copied (over "
            f"{COPY_LIMIT_ENV}={limit // 1_000_000} MB): a script that writes into it changes that data")


def remove_all(data_dir: Path) -> None:
    """Every channel under ``data_dir``: copies deleted, links unlinked (their data untouched)."""
    for channel in (data_dir.iterdir() if data_dir.is_dir() else []):
        if channel.is_symlink():
            channel.unlink()
        else:
            shutil.rmtree(channel, ignore_errors=True)
