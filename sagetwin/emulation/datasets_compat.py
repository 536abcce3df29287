"""Datasets saved by the host's ``datasets`` made readable by the job's older one.

``datasets`` 4 renamed the list feature type ``Sequence`` to ``List`` in what ``save_to_disk``
writes (``dataset_info.json``, ``state.json`` and the Arrow schema's metadata); 2.x and 3.x, which
the DLCs ship, refuse the new name. The data itself (Arrow) is the same, so a copy with the old
name written back is what the job's ``load_from_disk`` needs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sagetwin.core.errors import ConfigurationError
from sagetwin.core.paths import building, home_folder

FEATURE_FILES = ("dataset_info.json", "state.json", "dataset_dict.json")


def is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in FEATURE_FILES)


def needs_downgrade(datasets_version: str) -> bool:
    major = datasets_version.lstrip("=<>~ ").split(".")[0]
    return major.isdigit() and int(major) < 4


def old_features(features: Any) -> Any:
    """``{"_type": "List", "feature": X}`` → ``{"_type": "Sequence", "feature": X}``, all the way down."""
    if isinstance(features, list):
        return [old_features(item) for item in features]
    if not isinstance(features, dict):
        return features
    converted = {key: old_features(value) for key, value in features.items()}
    if converted.get("_type") == "List":
        converted["_type"] = "Sequence"
        converted.setdefault("length", -1)
    return converted


def readable_by(path: Path, datasets_version: str) -> Path:
    """``path`` itself when the job's ``datasets`` reads it as it is, else a cached converted copy."""
    if not needs_downgrade(datasets_version) or not is_saved_dataset(path) and not _has_saved_splits(path):
        return path
    if not _uses_new_names(path):
        return path
    key = hashlib.sha256(f"{path.resolve()}:{_fingerprint(path)}:{datasets_version}".encode()).hexdigest()[:16]
    target = home_folder("datasets-compat") / key
    if (target / ".complete").is_file():
        return target
    with building(target) as tmp:
        _copy_downgraded(path, tmp)
        (tmp / ".complete").write_text(datasets_version)
    return target


def _has_saved_splits(path: Path) -> bool:
    return path.is_dir() and any(is_saved_dataset(child) for child in path.iterdir())


def _uses_new_names(path: Path) -> bool:
    return any('"List"' in f.read_text() for f in path.rglob("*.json") if f.name in FEATURE_FILES)


def _fingerprint(path: Path) -> str:
    return ",".join(f"{f.relative_to(path)}:{f.stat().st_size}:{f.stat().st_mtime_ns}"
                    for f in sorted(path.rglob("*")) if f.is_file())


def _copy_downgraded(source: Path, target: Path) -> None:
    import pyarrow as pa

    for file in sorted(source.rglob("*")):
        dest = target / file.relative_to(source)
        if file.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if file.name in FEATURE_FILES:
            dest.write_text(json.dumps(old_features(json.loads(file.read_text())), indent=2))
        elif file.suffix == ".arrow":
            _rewrite_arrow(file, dest, pa)
        else:
            dest.write_bytes(file.read_bytes())


def _rewrite_arrow(source: Path, dest: Path, pa: Any) -> None:
    """The same record batches under schema metadata that names the old feature types."""
    try:
        with pa.memory_map(str(source)) as stream:
            table = pa.ipc.open_stream(stream).read_all()
    except pa.ArrowInvalid as exc:
        raise ConfigurationError(f"{source} is not an Arrow stream that datasets wrote ({exc}).",
                                 "write the dataset with Dataset.save_to_disk().") from None
    metadata = dict(table.schema.metadata or {})
    if b"huggingface" in metadata:
        metadata[b"huggingface"] = json.dumps(old_features(json.loads(metadata[b"huggingface"]))).encode()
    table = table.replace_schema_metadata(metadata)
    with pa.OSFile(str(dest), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
