"""Tar archives (``model.tar.gz``, ``sourcedir.tar.gz``) unpacked by sagetwin's own member checks.

``tarfile``'s ``filter="data"`` is only as safe as the interpreter's patch level: on Python 3.11.7
a chain of symlinks whose resolved path passes PATH_MAX (CVE-2025-4517, fixed in 3.11.13) makes its
``realpath`` check pass while the kernel follows the links out of the target. So nothing here
relies on it: only regular files and folders are ever written, each created with ``O_EXCL`` and
``O_NOFOLLOW`` relative to a folder this module created itself; links, devices, FIFOs, absolute
names, ``..`` components and NUL bytes are refused, naming the archive, the member and the fix.
SageMaker's containers need no link members, and sagetwin's packer dereferences Hub symlinks.
Unpacked bytes and member counts are capped (a 0.5 MB archive can hold many GB of zeros); a
partially unpacked folder is removed on any error.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sagetwin.core.errors import ConfigurationError

LIMIT_ENV = "SAGETWIN_UNPACK_LIMIT_MB"
MEMBERS_ENV = "SAGETWIN_UNPACK_MAX_MEMBERS"
DEFAULT_LIMIT_MB = 64_000  # a 7B model in fp16 is ~15 GB; a 30B one still fits
DEFAULT_MAX_MEMBERS = 100_000
DISK_RESERVE = 1_000_000_000  # what unpacking leaves free on the target's disk, whatever the cap
CHUNK = 1 << 20
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)
_LINK_FIX = ("pack the files themselves, not links to them: `tar -czhf` (--dereference), tarfile's "
             "dereference=True, or sagetwin's pack_model(..., dereference=True). sagetwin unpacks only regular "
             "files and folders, whatever SageMaker's own extraction would follow.")
_NAME_FIX = "pack from inside the folder with relative names, e.g. `tar -czf model.tar.gz -C model_dir .`."
_KINDS = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a character device",
          tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a FIFO"}


class ArchiveError(ConfigurationError):
    """An archive sagetwin will not unpack; ``member`` names the offending entry, if any."""

    def __init__(self, problem: str, fix: str = "", *, member: str | None = None) -> None:
        self.member = member
        super().__init__(problem, fix)


class NotAnArchive(ArchiveError):
    """The file is not a (gzip-compressed) tar archive, or it is truncated."""


class UnsafeMember(ArchiveError):
    """A member is a link, device or FIFO, or its name would leave the target folder."""


class ArchiveTooLarge(ArchiveError):
    """The archive unpacks to more bytes, or more members, than the caps allow."""


@dataclass
class Caps:
    """How much one archive may unpack to: bytes (``$SAGETWIN_UNPACK_LIMIT_MB``, in MB of 10^6
    bytes, as ``SAGETWIN_CHANNEL_COPY_LIMIT_MB``) and members (``$SAGETWIN_UNPACK_MAX_MEMBERS``)."""

    max_bytes: int
    max_members: int

    @classmethod
    def from_env(cls) -> Caps:
        return cls(_number(LIMIT_ENV, DEFAULT_LIMIT_MB) * 1_000_000, _number(MEMBERS_ENV, DEFAULT_MAX_MEMBERS))


def _number(variable: str, default: int) -> int:
    value = os.environ.get(variable, "")
    if not value.strip():
        return default
    try:
        return int(float(value))
    except ValueError:
        raise ConfigurationError(f"{variable}={value!r} is not a number.",
                                 f"set e.g. {variable}={default}, or unset it.") from None


@dataclass
class Summary:
    """What an archive holds: member count, regular files, and the bytes they unpack to."""

    members: int = 0
    files: int = 0
    bytes: int = 0


def check_archive(archive: Path, *, name: str | None = None, compression: str = "gz",
                  caps: Caps | None = None) -> Summary:
    """Every member of ``archive`` checked as :func:`extract_archive` checks it, nothing written:
    for a caller that hands the archive to other code (the twin at CreateEndpoint, the SDK)."""
    summary = Summary()
    for _ in _members(archive, name or str(archive), compression, caps or Caps.from_env(), summary):
        pass
    return summary


def extract_archive(archive: Path, target: Path, *, name: str | None = None, compression: str = "gz",
                    caps: Caps | None = None) -> Summary:
    """Unpack ``archive`` into ``target``, which must not exist yet (or be an empty folder this
    program just made). ``compression``: ``"gz"``, or ``"*"`` for whatever tarfile detects.
    ``name``: what to call the archive in errors (e.g. its S3 URI). Removes ``target`` on error."""
    label = name or str(archive)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(target, 0o700)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(target).st_mode) or any(os.scandir(target)):
            raise ArchiveError(f"cannot unpack {label} into {target}: it exists and is not an empty folder.",
                               "remove it first.") from None
    summary = Summary()
    root = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        room = shutil.disk_usage(target).free - DISK_RESERVE
        for member, parts, data in _members(archive, label, compression, caps or Caps.from_env(), summary):
            if summary.bytes > room:
                raise ArchiveTooLarge(
                    f"{label} unpacks to more than the {max(0, room) // 1_000_000} MB free on the disk of {target} "
                    f"(reached at member {member.name!r}; sagetwin leaves {DISK_RESERVE // 1_000_000} MB free).",
                    "free disk space there, or point SAGETWIN_HOME at a bigger disk.", member=member.name)
            _write_member(root, member, parts, data, label, compression)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        os.close(root)
    return summary


def _members(archive: Path, label: str, compression: str, caps: Caps, summary: Summary
             ) -> Iterator[tuple[tarfile.TarInfo, list[str], IO[bytes] | None]]:
    """Each member, checked, with its name split into safe components and (for a file) its data,
    which must be read before the next member: the archive is streamed, read once front to back."""
    try:
        tar = tarfile.open(archive, f"r|{compression}")
    except _READ_ERRORS as exc:
        raise _not_an_archive(label, compression, exc) from None
    with tar:
        while True:
            try:
                member = tar.next()
            except _READ_ERRORS as exc:
                raise _not_an_archive(label, compression, exc) from None
            if member is None:
                return
            summary.members += 1
            if summary.members > caps.max_members:
                raise _too_large(label, f"more than {caps.max_members} members", MEMBERS_ENV, caps.max_members,
                                 member.name)
            parts = _checked_name(member, label)
            if member.isreg():
                summary.files += 1
                summary.bytes += member.size
                if summary.bytes > caps.max_bytes:
                    raise _too_large(label, f"more than {caps.max_bytes // 1_000_000} MB", LIMIT_ENV,
                                     caps.max_bytes // 1_000_000, member.name)
            try:
                data = tar.extractfile(member) if member.isreg() else None
            except _READ_ERRORS as exc:
                raise _not_an_archive(label, compression, exc) from None
            yield member, parts, data


def _checked_name(member: tarfile.TarInfo, label: str) -> list[str]:
    """``member``'s name as components that stay inside the target; anything else is refused."""
    name = member.name

    def refuse(why: str, fix: str = _NAME_FIX) -> UnsafeMember:
        return UnsafeMember(f"member {name!r} of {label} {why}, so sagetwin does not unpack the archive.", fix,
                            member=name)

    if not (member.isreg() or member.isdir()):
        kind = _KINDS.get(member.type, f"of tar type {member.type!r}, not a regular file or folder")
        link = member.linkname if len(member.linkname) <= 80 else f"{member.linkname[:60]}... (long)"
        target = f" (to {link!r})" if member.issym() or member.islnk() else ""
        raise refuse(f"is {kind}{target}", _LINK_FIX)
    if "\x00" in name:
        raise refuse("contains a NUL character")
    if name.startswith("/"):
        raise refuse("is an absolute name: it would be written outside the folder")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise refuse("has a '..' component: it would be written outside the folder")
    if not parts and member.isreg():
        raise refuse("names the folder itself, not a file in it")
    if any(len(os.fsencode(part)) > 255 for part in parts):
        raise refuse("has a component longer than 255 bytes, which no file system here can hold")
    return parts


def _write_member(root: int, member: tarfile.TarInfo, parts: list[str], data: IO[bytes] | None,
                  label: str, compression: str) -> None:
    """Create ``member`` under the folder ``root``, never following a link: each parent is opened
    with ``O_NOFOLLOW`` (made by this module if missing), the file with ``O_EXCL``."""
    if not parts:
        return  # "./": the target itself
    parent = _open_folder(root, parts[:-1], label, member.name)
    try:
        if member.isdir():
            os.close(_open_folder(parent, parts[-1:], label, member.name))
            return
        _write_file(parent, parts[-1], member, data, label, compression)
    finally:
        if parent != root:
            os.close(parent)


def _open_folder(root: int, parts: list[str], label: str, name: str) -> int:
    """The folder ``parts`` under ``root`` as a descriptor, made 0700 if missing (folder modes in the
    archive are ignored, as a data filter ignores them)."""
    current = root
    for part in parts:
        try:
            try:
                os.mkdir(part, 0o700, dir_fd=current)
            except FileExistsError:
                pass
            opened = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            raise UnsafeMember(f"member {name!r} of {label} needs {part!r} to be a folder, but an earlier member made "
                               "it a file.", "pack each path once.", member=name) from None
        finally:
            if current != root:
                os.close(current)
        current = opened
    return current


def _write_file(parent: int, leaf: str, member: tarfile.TarInfo, data: IO[bytes] | None,
                label: str, compression: str) -> None:
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(leaf, flags, 0o600, dir_fd=parent)
    except FileExistsError:  # a later copy of the same path wins, as tar's does; never a folder
        if not stat.S_ISREG(os.stat(leaf, dir_fd=parent, follow_symlinks=False).st_mode):
            raise UnsafeMember(f"member {member.name!r} of {label} is a file where an earlier member made a folder.",
                               "pack each path once.", member=member.name) from None
        os.unlink(leaf, dir_fd=parent)
        fd = os.open(leaf, flags, 0o600, dir_fd=parent)
    with os.fdopen(fd, "wb") as out:
        written = 0
        while data is not None:
            try:
                chunk = data.read(CHUNK)
            except _READ_ERRORS as exc:
                raise _not_an_archive(label, compression, exc) from None
            if not chunk:
                break
            written += len(chunk)
            if written > member.size:  # never more than its header declared, whatever the reader does
                raise UnsafeMember(f"member {member.name!r} of {label} holds more bytes than its header declares.",
                                   _NAME_FIX, member=member.name)
            out.write(chunk)
        os.fchmod(out.fileno(), _data_mode(member.mode))
        try:
            os.utime(out.fileno(), (member.mtime, member.mtime))
        except (OverflowError, OSError, ValueError, TypeError):
            pass  # a timestamp the file system cannot hold: the file keeps the time it was written


def _data_mode(mode: int) -> int:
    """A member's permissions as written: the owner's read and write, and execute if the archive
    gave the owner execute; no setuid/setgid/sticky, nothing for group or other (what came from a
    private bucket stays this user's, as sagetwin's home is 0700)."""
    return 0o600 | (mode & 0o100)


def _not_an_archive(label: str, compression: str, exc: BaseException) -> NotAnArchive:
    kind = "tar.gz" if compression == "gz" else "tar"
    return NotAnArchive(f"{label} is not a valid {kind} archive ({type(exc).__name__}: {exc}).",
                        f"pack it again as a {kind} archive (e.g. `tar -czf model.tar.gz -C model_dir .`).")


def _too_large(label: str, what: str, variable: str, cap: int, member: str) -> ArchiveTooLarge:
    return ArchiveTooLarge(f"{label} unpacks to {what} (reached at member {member!r}); the cap guards against "
                           "archives that fill the disk.",
                           f"if the archive is what you meant, raise {variable} (now {cap}).", member=member)
