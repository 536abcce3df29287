"""Check a job's ``requirements.txt`` against the installed packages, without installing."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement


def unmet_requirements(requirements_file: Path) -> list[str]:
    """Requirement lines not satisfied by this environment (empty when there is no file)."""
    if not requirements_file.is_file():
        return []
    unmet: list[str] = []
    for raw in requirements_file.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            unmet.append(line)
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            unmet.append(line)
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            unmet.append(f"{line} (installed: {version})")
    return unmet
