"""Where sagetwin keeps caches and run folders."""

from __future__ import annotations

import os
import re
import time
import uuid
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
