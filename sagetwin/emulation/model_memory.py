"""Whether a model's weights fit in the memory a model server would load them into: checked
before loading, so a model too large for this machine is refused with the numbers instead of
taking the machine down or being killed part-way."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def weights_size(model_dir: str) -> int:
    """Bytes of the model's weights (safetensors, else PyTorch files) in ``model_dir``."""
    folder = Path(model_dir)
    files = list(folder.glob("*.safetensors")) or list(folder.glob("*.bin"))
    return sum(path.stat().st_size for path in files)


HALF_PRECISION = ("float16", "bfloat16")


def loaded_size(model_dir: str, on_gpu: bool) -> int:
    """Bytes the weights take once loaded: as stored on a GPU, in float32 on a CPU (``load_options``),
    twice the file size of half-precision weights."""
    stored = weights_size(model_dir)
    return stored * 2 if not on_gpu and stored_dtype(model_dir) in HALF_PRECISION else stored


def stored_dtype(model_dir: str) -> str:
    config = Path(model_dir) / "config.json"
    settings = json.loads(config.read_text()) if config.is_file() else {}
    return str(settings.get("torch_dtype") or settings.get("dtype") or "float32")


def load_options(torch: Any) -> dict[str, Any]:
    """``from_pretrained``'s dtype: the stored one on a GPU (as the containers load), float32 on a
    CPU (half precision is slow there, and not every operation has it), whatever transformers'
    own default (float32 in 4.x, the stored dtype in 5.x), under the name the version knows."""
    import transformers

    newer = tuple(int(part) for part in transformers.__version__.split(".")[:2]) >= (4, 56)
    return {"dtype" if newer else "torch_dtype": "auto" if torch.cuda.is_available() else torch.float32}


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
    on_gpu = torch.cuda.is_available()
    needed = loaded_size(model_dir, on_gpu)
    free = torch.cuda.mem_get_info()[0] if on_gpu else available_memory()
    if needed > free:
        raise SystemExit(f"{server}: the model's weights take {needed / 1e9:.1f} GB loaded and this machine has "
                         f"{free / 1e9:.1f} GB of {'GPU ' if on_gpu else ''}memory available: it cannot be loaded "
                         "here. Try a smaller model of the same family offline, and this one on SageMaker.")
