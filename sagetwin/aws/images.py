"""The stack a request's image names: a Hugging Face DLC tag carries transformers, torch and
Python, so a job run from it gets exact parity by construction."""

from __future__ import annotations

import re
from dataclasses import dataclass

DLC = re.compile(
    r"(?:^|/)huggingface-pytorch-(?P<scope>training|inference):"
    r"(?P<pytorch>\d+(?:\.\d+)+)-transformers(?P<transformers>\d+(?:\.\d+)+)-(?P<device>cpu|gpu)-(?P<py>py\d+)"
)


@dataclass(frozen=True)
class ImageStack:
    scope: str
    transformers: str
    pytorch: str
    py: str
    device: str


class UnsupportedImage(ValueError):
    """An image whose software the twin cannot rebuild offline."""


def stack_of(image: str, scope: str) -> ImageStack:
    """The stack of a Hugging Face PyTorch DLC URI; anything else is refused with the reason."""
    match = DLC.search(image or "")
    if not match:
        raise UnsupportedImage(
            f"sagetwin cannot run image {image!r} offline: it runs the Hugging Face PyTorch DLCs "
            "(huggingface-pytorch-training / huggingface-pytorch-inference), whose tags name the versions "
            "it rebuilds, and the LLM and embeddings containers' contracts (huggingface-pytorch-tgi-inference, tei) on "
            "--backend process.")
    if match.group("scope") != scope:
        raise UnsupportedImage(f"image {image!r} is a {match.group('scope')} image; a {scope} image is needed here.")
    return ImageStack(scope, match.group("transformers"), match.group("pytorch"), match.group("py"),
                      match.group("device"))
