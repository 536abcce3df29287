"""Local artifacts: model.tar.gz packing as SageMaker does it, metrics, file:// paths."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

from sagetwin.core.errors import ConfigurationError, EndpointError
from sagetwin.emulation.archives import extract_archive

FICLONE = 0x40049409  # <linux/fs.h>: _IOW(0x94, 9, int)
_NO_CLONE = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EBADF, errno.EPERM}
UNPACK_FORMAT = "v2"  # cache entries unpacked by sagetwin's own member checks; older ones are never served


def local_path(uri: str, what: str) -> Path:
    """``file://`` URIs and plain paths → Path; anything remote is a clear error."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else uri).expanduser()
    raise ConfigurationError(
        f"{what} {uri} is not on this machine; this backend reads local data only.",
        "download it first, pass a local path or file:// URI, or use --backend sagemaker for S3 data.",
    )


def local_input(uri: str, channel: str) -> Path:
    """The local file or folder behind input channel ``channel``; a missing one is a clear error."""
    path = local_path(uri, f"input channel {channel!r}")
    if not path.exists():
        raise ConfigurationError(
            f"input channel {channel!r} points to {path}, which does not exist.",
            "check the path passed to fit(), or prepare the data first (sagetwin run does it for you).",
        )
    return path


def local_model_archive(uri: str) -> Path:
    """The local ``model.tar.gz`` behind ``model_data``; a missing one is a clear error."""
    path = local_path(uri, "model_data")
    if not path.is_file():
        raise ConfigurationError(
            f"model_data {path} does not exist or is not a file.",
            "pass the model.tar.gz written by fit() (TrainingResult.model_data), as a path or file:// URI.",
        )
    return path


def pack_model(model_dir: Path, target: Path, *, dereference: bool = False) -> Path:
    """``model.tar.gz`` with the model folder's files at the archive root, as SageMaker packs it.
    ``dereference``: store what symlinks point to (a Hub cache's files link into its blob store)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz", compresslevel=1, dereference=dereference) as tar:
        for item in sorted(model_dir.iterdir()):
            tar.add(item, arcname=item.name)
    return target


def unpack_model(archive: Path, target: Path, cache_dir: Path | None = None, keep: int = 3) -> Path:
    """``archive`` unpacked into a fresh ``target`` by sagetwin's own member checks
    (:mod:`sagetwin.emulation.archives`). With ``cache_dir``, each archive is unpacked once (keyed by
    its inode, size, modification and change times: a rewritten archive is a new key) and cloned
    from there (:func:`clone_file`), which costs a fraction of gunzip for the weights of a 100 MB
    model; the ``keep`` most recently used unpacked archives are kept."""
    if target.exists():
        shutil.rmtree(target)
    if cache_dir is None:
        extract_archive(archive, target)
        return target
    info = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}:{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:"
                         f"{info.st_ctime_ns}:{UNPACK_FORMAT}".encode()).hexdigest()[:32]
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one program at a time unpacks, copies or evicts
        cached = cache_dir / key
        if not cached.is_dir():
            partial = Path(tempfile.mkdtemp(prefix=f"{key}.", suffix=".partial", dir=cache_dir))
            try:
                extract_archive(archive, partial)
                os.replace(partial, cached)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        os.utime(cached)  # most recently used
        shutil.copytree(cached, target, symlinks=True, copy_function=clone_file)
        unpacked = sorted((p for p in cache_dir.iterdir() if p.is_dir() and not p.name.endswith(".partial")),
                          key=_mtime, reverse=True)
        abandoned = [p for p in cache_dir.iterdir() if p.name.endswith(".partial")]  # a killed unpack's
        for stale in unpacked[keep:] + abandoned:
            shutil.rmtree(stale, ignore_errors=True)
    return target


def clone_file(source: str, destination: str) -> str:
    """Copy ``source`` as a reflink (``FICLONE``: shared blocks, copy-on-write) where the file
    system can (btrfs, XFS, bcachefs, ZFS 2.2), else byte for byte (ext4, tmpfs).

    Not hard links, though they would save as much: an endpoint's model folder is its own, as
    ``/opt/ml/model`` is on SageMaker, and a handler may write into it. A hard-linked file would
    pass that write on to the cache and to every other endpoint of the archive; making the cached
    files read-only instead would refuse a write that AWS accepts, and does not even stop root (as
    which sagetwin often runs in containers and CI). A reflink shares blocks only until a write."""
    try:
        with open(source, "rb") as src, open(destination, "xb") as dst:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
    except OSError as exc:
        if exc.errno not in _NO_CLONE:
            raise
        shutil.copyfile(source, destination)  # the empty file left by the failed clone is overwritten
    shutil.copystat(source, destination)
    return destination


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by another deploy's cleanup
        return 0.0


def read_metrics(output_data_dir: Path) -> dict[str, float]:
    """``metrics.json`` if the script wrote one, else the guide's ``eval_results.txt`` lines."""
    metrics_file = output_data_dir / "metrics.json"
    if metrics_file.is_file():
        try:
            data = json.loads(metrics_file.read_text())
            return {k: v for k, v in data.items() if isinstance(v, (int, float))}
        except ValueError:
            pass
    metrics: dict[str, float] = {}
    results = output_data_dir / "eval_results.txt"
    if results.is_file():
        for line in results.read_text().splitlines():
            key, sep, value = line.partition(" = ")
            if sep:
                try:
                    metrics[key.strip().removeprefix("eval_")] = float(value)
                except ValueError:
                    continue
    return metrics


def package_outputs(model_dir: Path, output_data_dir: Path, target_dir: Path) -> tuple[str, str]:
    """Pack ``model.tar.gz`` and ``output.tar.gz`` into ``target_dir``; return their file:// URIs."""
    model_tar = pack_model(model_dir, target_dir / "model.tar.gz")
    output_tar = pack_model(output_data_dir, target_dir / "output.tar.gz")
    return model_tar.resolve().as_uri(), output_tar.resolve().as_uri()


def require_model_files(archive: Path) -> None:
    """An empty model.tar.gz means the script saved its model somewhere other than SM_MODEL_DIR."""
    with tarfile.open(archive, "r:gz") as tar:
        if not any(member.isfile() for member in tar.getmembers()):
            raise EndpointError(
                f"{archive} is empty: the training script wrote nothing to SM_MODEL_DIR (/opt/ml/model), so "
                "there is no model to serve.",
                "save the model and tokenizer to os.environ['SM_MODEL_DIR'] (e.g. "
                "trainer.save_model(os.environ['SM_MODEL_DIR'])); `sagetwin check` shows where it wrote instead.",
            )


def metrics_from_archive(archive: Path | IO[bytes]) -> dict[str, float]:
    """Metrics from an ``output.tar.gz`` (a path or an open file), at its root or under ``data/``.
    Streamed: only the two small metric files are read, however large the rest of the archive."""
    if isinstance(archive, Path) and not archive.is_file():
        return {}
    wanted = {"metrics.json", "eval_results.txt", "data/metrics.json", "data/eval_results.txt"}
    found: dict[str, bytes] = {}
    opened = tarfile.open(archive, "r|gz") if isinstance(archive, Path) else tarfile.open(fileobj=archive, mode="r|gz")
    with opened as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if member.isfile() and name in wanted and member.size < 10_000_000:
                handle = tar.extractfile(member)
                found[name] = handle.read() if handle else b""
    for folder in ("", "data/"):
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("metrics.json", "eval_results.txt"):
                if folder + name in found:
                    (Path(tmp) / name).write_bytes(found[folder + name])
            metrics = read_metrics(Path(tmp))
        if metrics:
            return metrics
    return {}
