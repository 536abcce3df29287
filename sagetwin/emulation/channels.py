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
    if source.is_file():
        return source.stat().st_size
    return sum(p.stat().st_size for p in source.rglob("*") if p.is_file())


def _copy(source: Path, target: Path) -> None:
    """``cp --reflink=auto``: copy-on-write (instant, no space) on btrfs/XFS, a plain copy elsewhere."""
    cp = shutil.which("cp")
    contents = [source] if source.is_file() else list(source.iterdir())
    if cp and contents:
        done = subprocess.run([cp, "-R", "-L", "--reflink=auto", *map(str, contents),
                               str(target if source.is_dir() else target.parent)], capture_output=True, text=True)
        if done.returncode == 0:
            return
        full = "No space left on device" in done.stderr
        raise OSError(errno.ENOSPC if full else errno.EIO, f"copying {source}: {done.stderr.strip()}")
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
