"""Whether a model's weights fit in the memory a model server would load them into: checked
before loading, so a model too large for this machine is refused with the numbers instead of
taking the machine down or being killed part-way."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def weights_size(model_dir: str) -> int:
    """Bytes of the model's weights (safetensors, else PyTorch files) in ``model_dir``."""
    folder = Path(model_dir)
    files = list(folder.glob("*.safetensors")) or list(folder.glob("*.bin"))
    return sum(path.stat().st_size for path in files)


def available_memory() -> int:
    """This machine's available memory (``MemAvailable``), in bytes."""
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def refuse_what_cannot_fit(model_dir: str, torch: Any, server: str) -> None:
    """A model whose weights exceed the memory it would load into is refused before loading,
    with the numbers (loading it would take the machine down, or be killed part-way)."""
    needed = weights_size(model_dir)
    on_gpu = torch.cuda.is_available()
    free = torch.cuda.mem_get_info()[0] if on_gpu else available_memory()
    if needed > free:
        raise SystemExit(f"{server}: the model's weights take {needed / 1e9:.1f} GB and this machine has "
                         f"{free / 1e9:.1f} GB of {'GPU ' if on_gpu else ''}memory available: it cannot be loaded "
                         "here. Try a smaller model of the same family offline, and this one on SageMaker.")
