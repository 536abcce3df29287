"""Where `sagetwin check`'s audit of one job writes, and the environment that turns it on for
every Python process of the job (``audit_site/sitecustomize.py``)."""

from __future__ import annotations

import os
from pathlib import Path

SITE_DIR = Path(__file__).with_name("audit_site")


def network_record(audit_record: str) -> Path:
    return Path(audit_record + ".network")


def spawn_record(audit_record: str) -> Path:
    return Path(audit_record + ".spawns")


def audit_env(base: dict[str, str], audit_record: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(SITE_DIR), base.get("PYTHONPATH")])),
            "SAGETWIN_AUDIT_NETWORK": str(network_record(audit_record)),
            "SAGETWIN_AUDIT_SPAWNS": str(spawn_record(audit_record))}


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
