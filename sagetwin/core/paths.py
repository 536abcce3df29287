"""Where sagetwin keeps caches and run folders, and how it writes them safely."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path


def home_dir() -> Path:
    """``$SAGETWIN_HOME``, else ``$XDG_CACHE_HOME/sagetwin``, else ``~/.cache/sagetwin``."""
    if os.environ.get("SAGETWIN_HOME"):
        path = Path(os.environ["SAGETWIN_HOME"]).expanduser()
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(cache) / "sagetwin"
    path.mkdir(parents=True, exist_ok=True)
    return path


def unique_name(prefix: str) -> str:
    """A SageMaker-valid name (<= 63 chars, [a-zA-Z0-9-]) that sorts by time."""
    prefix = re.sub(r"[^a-zA-Z0-9-]+", "-", prefix).strip("-")[:30] or "sagetwin"
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:4]}"


@contextlib.contextmanager
def building(target: Path) -> Iterator[Path]:
    """Build a cache folder under a unique temporary name beside ``target`` and rename it into
    place when the block succeeds: readers never see half a folder, and two first-time builds
    never delete each other's work (the second one to finish keeps the first one's result)."""
    target.parent.mkdir(parents=True, exist_ok=True)
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
