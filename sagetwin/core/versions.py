"""One version matrix (transformers, PyTorch, Python) for cloud images and local images alike.

Read from the SageMaker SDK's own Hugging Face image table (``image_uri_config/huggingface.json``),
without importing the SDK. The default is the newest combination that exists for both
training and inference, so a model is trained and served on the same stack.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sagetwin.core.errors import ConfigurationError


@dataclass(frozen=True, order=True)
class Stack:
    """One Hugging Face DLC combination."""

    transformers: str
    pytorch: str
    py: str  # e.g. "py311"

    @property
    def python(self) -> str:
        """``py311`` → ``3.11``."""
        digits = self.py.removeprefix("py")
        return f"{digits[0]}.{digits[1:]}"

    def describe(self) -> str:
        return f"transformers {self.transformers}, pytorch {self.pytorch}, {self.py}"

    def as_dict(self) -> dict[str, str]:
        return {"transformers": self.transformers, "pytorch": self.pytorch, "python": self.python}


@dataclass(frozen=True)
class ImageEntry:
    stack: Stack
    scope: str  # "training" | "inference"
    processors: tuple[str, ...]
    repository: str
    container_version: dict[str, str]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


@lru_cache(maxsize=1)
def sdk_table() -> dict:
    """The installed SDK's Hugging Face image table."""
    spec = importlib.util.find_spec("sagemaker")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError("the SageMaker Python SDK is not installed.",
                                 "pip install 'sagemaker[local]>=2.140,<3'")
    path = Path(list(spec.submodule_search_locations)[0]) / "image_uri_config" / "huggingface.json"
    return json.loads(path.read_text())


def entries(scope: str) -> list[ImageEntry]:
    """Every PyTorch combination the SDK knows for ``scope``."""
    found = []
    for tf_version, frameworks in sdk_table()[scope]["versions"].items():
        for framework, entry in frameworks.items():
            if not framework.startswith("pytorch") or not isinstance(entry, dict) or "py_versions" not in entry:
                continue
            for py in entry["py_versions"]:
                found.append(ImageEntry(
                    Stack(tf_version, framework.removeprefix("pytorch"), py), scope,
                    tuple(entry.get("container_version", {}).keys()) or tuple(sdk_table()[scope]["processors"]),
                    entry.get("repository", f"huggingface-pytorch-{scope}"), dict(entry.get("container_version", {})),
                ))
    return sorted(found, key=lambda e: (_version_key(e.stack.transformers), _version_key(e.stack.pytorch)))


def default_stack() -> Stack:
    """The newest stack that the SDK lists for both training and inference."""
    training = {e.stack for e in entries("training")}
    common = [e.stack for e in entries("inference") if e.stack in training]
    if not common:
        raise ConfigurationError("the SageMaker SDK lists no Hugging Face stack for both training and inference.",
                                 "pass transformers_version, pytorch_version and py_version explicitly.")
    return max(common, key=lambda s: (_version_key(s.transformers), _version_key(s.pytorch)))


def unsupported(arg: str, options: list[str], arg_name: str) -> ConfigurationError:
    """The SDK's own words for a value its image table does not list (``image_uris._validate_arg``)."""
    return ConfigurationError(
        f"Unsupported {arg_name}: {arg}. You may need to upgrade your SDK version (pip install -U sagemaker) "
        f"for newer {arg_name}s. Supported {arg_name}(s): {', '.join(options)}.",
        "pick a listed value (the SDK's aliases such as 4.26 or 1.13 work too), or pass image_uri for an "
        "image of your own.",
    )


def _full_transformers(version: str, scope: str) -> str:
    table = sdk_table()[scope]
    aliases = table.get("version_aliases", {})
    if version not in table["versions"] and version not in aliases:
        raise unsupported(version, [*table["versions"], *aliases], "huggingface version")
    return aliases.get(version, version)


def _full_pytorch(pytorch: str, transformers: str, scope: str) -> str:
    """``1.13`` → ``1.13.1`` through the transformers version's own aliases, as the SDK does."""
    config = sdk_table()[scope]["versions"][transformers]
    base = config.get("version_aliases", {}).get(f"pytorch{pytorch}", f"pytorch{pytorch}")
    if base not in config:
        raise unsupported(base, list(config), "base framework")
    return base.removeprefix("pytorch")


def resolve_stack(transformers: str | None = None, pytorch: str | None = None, py: str | None = None,
                  *, scope: str = "training") -> Stack:
    """The stack the SDK's ``image_uris.retrieve("huggingface", ...)`` would resolve: its aliases
    (4.26 → 4.26.0, 1.13 → 1.13.1) and its errors. Nothing given: the default stack; a partial
    choice is completed with the newest listed combination."""
    if not (transformers or pytorch or py):
        return default_stack()
    if transformers:
        transformers = _full_transformers(transformers, scope)
        if pytorch:
            pytorch = _full_pytorch(pytorch, transformers, scope)
    candidates = [e.stack for e in entries(scope)
                  if (not transformers or e.stack.transformers == transformers)
                  and (not pytorch or e.stack.pytorch == pytorch or e.stack.pytorch.startswith(f"{pytorch}."))]
    if py and candidates and py not in {s.py for s in candidates}:
        raise unsupported(py, sorted({s.py for s in candidates}), "Python version")
    candidates = [s for s in candidates if not py or s.py == py]
    if not candidates:
        known = ", ".join(f"{s.transformers}/pt{s.pytorch}/{s.py}" for s in sorted({e.stack for e in entries(scope)}))
        raise ConfigurationError(
            f"the SageMaker SDK has no Hugging Face {scope} image for transformers={transformers} "
            f"pytorch={pytorch} py={py}.",
            f"pick a listed combination ({known}) or pass image_uri for a custom image.",
        )
    return max(candidates, key=lambda s: (_version_key(s.transformers), _version_key(s.pytorch)))
