"""Model archives are unpacked once and copied for each endpoint: a rewritten archive is
unpacked again, an endpoint's copy is its own, and only a few unpacked archives are kept."""

from __future__ import annotations

import os
import tarfile
import time
from pathlib import Path

from sagetwin.emulation.artifacts import unpack_model


def archive(path: Path, content: str) -> Path:
    source = path.parent / f"{path.name}.src"
    source.mkdir(parents=True, exist_ok=True)
    (source / "config.json").write_text(content)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source / "config.json", arcname="config.json")
    return path


def counted_unpacks(monkeypatch) -> list[Path]:
    """The archives ``unpack_model`` extracts, one entry per extraction (the extraction itself runs)."""
    from sagetwin.emulation import artifacts

    extracted: list[Path] = []
    real = artifacts.extract_archive

    def counting(source, target, *args, **kwargs):
        extracted.append(Path(source))
        return real(source, target, *args, **kwargs)

    monkeypatch.setattr(artifacts, "extract_archive", counting)
    return extracted


def test_an_archive_is_unpacked_once_and_each_endpoint_gets_its_own_copy(tmp_path, monkeypatch):
    extracted = counted_unpacks(monkeypatch)
    cache = tmp_path / "cache"
    model = archive(tmp_path / "model.tar.gz", "first")
    one = unpack_model(model, tmp_path / "endpoint-1" / "model", cache_dir=cache)
    (one / "config.json").write_text("changed by a handler")
    two = unpack_model(model, tmp_path / "endpoint-2" / "model", cache_dir=cache)
    assert extracted == [model]  # the second endpoint was copied from the cache, not unpacked again
    assert (two / "config.json").read_text() == "first"
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 1


def test_a_rewritten_archive_is_unpacked_again(tmp_path, monkeypatch):
    extracted = counted_unpacks(monkeypatch)
    cache = tmp_path / "cache"
    model = archive(tmp_path / "model.tar.gz", "first")
    unpack_model(model, tmp_path / "e" / "model", cache_dir=cache)
    time.sleep(0.01)
    archive(model, "second")
    os.utime(model, ns=(time.time_ns(), time.time_ns()))
    assert (unpack_model(model, tmp_path / "e" / "model", cache_dir=cache) / "config.json").read_text() == "second"
    assert extracted == [model, model]


def test_only_the_most_recently_used_archives_stay_unpacked(tmp_path):
    cache = tmp_path / "cache"
    for number in range(5):
        unpack_model(archive(tmp_path / f"m{number}.tar.gz", str(number)), tmp_path / "e" / "model", cache_dir=cache,
                     keep=3)
        time.sleep(0.01)
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 3
