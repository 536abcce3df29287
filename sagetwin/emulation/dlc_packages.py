"""What the Hugging Face DLCs install, stack by stack: one table, each row with its source.

Read from aws/deep-learning-containers (the Hugging Face Dockerfiles and their buildspecs) and
the PyTorch base images they build on. ``pin`` is what the local image installs; ``dlc`` is what
the DLC's files say, when that is not one exact version (a range, or unpinned: whatever the
index had on the day the DLC was built). Only what a training script or the inference handler
touches is listed; the rest of the DLC (diffusers, peft, CUDA tooling) is not replicated.
"""

from __future__ import annotations

from dataclasses import dataclass

HF_TRAINING = "aws/deep-learning-containers huggingface/pytorch/training"
HF_INFERENCE = "aws/deep-learning-containers huggingface/pytorch/inference"


@dataclass(frozen=True)
class Package:
    name: str
    pin: str  # a pip requirement specifier: "==4.26.0", "<2", "" (newest the index has for that Python)
    source: str
    dlc: str = ""  # what the DLC says when it is not exactly ``pin``

    @property
    def requirement(self) -> str:
        return f"{self.name}{self.pin}"


GUIDE_SOURCES = {
    "training": f"{HF_TRAINING}/docker/1.13/py3/cu117/Dockerfile.gpu @1b81df39; buildspec-1-13.yml @9cf77121; "
                "pytorch/training/docker/1.13/py3/cu117/Dockerfile.gpu @00a4be11",
    "inference": f"{HF_INFERENCE}/docker/1.13/py3/Dockerfile.cpu @570e75fe; .../cu117/Dockerfile.gpu @5829966a",
}
DEFAULT_SOURCES = {
    "training": f"{HF_TRAINING}/docker/2.3/py3/cu121/Dockerfile.gpu @12d5a048; buildspec-2-3-0.yml @372eaae6; "
                "pytorch/training/docker/2.3/py3/cu121/Dockerfile.gpu @06d0ef0e",
    "inference": f"{HF_INFERENCE}/docker/2.3/py3/Dockerfile.cpu @060ae230; .../cu121/Dockerfile.gpu @0762240f; "
                 "buildspec-2-3-0.yml @f34f70c9",
}


def _rows(sources: dict[str, str], rows: dict[str, list[tuple[str, str, str]]]) -> dict[str, tuple[Package, ...]]:
    return {scope: tuple(Package(name, pin, sources[scope], dlc) for name, pin, dlc in packages)
            for scope, packages in rows.items()}


# (transformers, pytorch, py) -> scope -> packages. Python and torch come from the stack itself.
DLC_PACKAGES: dict[tuple[str, str, str], dict[str, tuple[Package, ...]]] = {
    ("4.26.0", "1.13.1", "py39"): _rows(GUIDE_SOURCES, {
        "training": [
            ("transformers[sklearn,sentencepiece]", "==4.26.0", "transformers[sklearn,sentencepiece,audio,vision]"),
            ("datasets", "==2.9.0", ""),
            ("sagemaker-training", "<4.5", "unpinned (pip install -U in the PyTorch base, early 2023)"),
            ("sagemaker-pytorch-training", "==2.7.0", "unpinned, 2.7.0 when built: its launchers run distribution="),
            ("numpy", "<2", "unpinned, NumPy 1.x when built"),
            ("pyarrow", "<15", "unpinned, a release datasets 2.9 reads"),
            ("fsspec", "<=2023.1.0", "unpinned, 2023.1 when built"),
            ("huggingface_hub", "<0.13", "unpinned, 0.12 when built"),
            ("safetensors", "", "a dependency of later transformers"),
        ],
        "inference": [
            ("transformers[sentencepiece]", "==4.26.0", "transformers[sentencepiece,audio,vision]"),
            ("sagemaker-huggingface-inference-toolkit", "==2.1.2", "<3 (newest 2.x when built)"),
            ("multi-model-server", "==1.1.11", ""),
            ("accelerate", "==0.16.0", ">=0.11.0"),
            ("numpy", "<2", "unpinned (1.22.2 on the GPU image)"),
            ("protobuf", ">=3.19.5,<=3.20.2", ""),
            ("setuptools", "<81", "MMS imports pkg_resources"),
            ("huggingface_hub", "<0.13", "unpinned, 0.12 when built"),
            ("safetensors", "", "a dependency of later transformers"),
        ],
    }),
    ("4.48.0", "2.3.0", "py311"): _rows(DEFAULT_SOURCES, {
        "training": [
            ("transformers[sklearn,sentencepiece]", "==4.48.0",
             "transformers[sklearn,sentencepiece,audio,vision,pipelines]"),
            ("datasets", "==3.1.0", ""),
            ("evaluate", "==0.4.3", ""),
            ("accelerate", "==1.1.0", ""),
            ("huggingface_hub", "==0.25.1", ""),
            ("sagemaker-training", "", "unpinned (pip install -U in the PyTorch base)"),
            ("sagemaker-pytorch-training", "==2.8.1", "unpinned, 2.8.1 when built: its launchers run distribution="),
            ("numpy", "<2", "unpinned, NumPy 1.x with torch 2.3"),
            ("pyarrow", "<19", "unpinned, 18.x when built (later ones need NumPy 2)"),
        ],
        "inference": [
            ("transformers[sentencepiece]", "==4.48.0", "transformers[sentencepiece,audio,vision]"),
            ("sagemaker-huggingface-inference-toolkit", "==2.4.1", ""),
            ("multi-model-server", "==1.1.11", ""),
            ("accelerate", "==1.1.0", "1.1.0 (CPU image), 1.0.1 (GPU image)"),
            ("huggingface_hub", "==0.25.1", ""),
            ("numpy", "<2", "unpinned"),
            ("protobuf", ">=3.19.5,<=3.20.2", ""),
            ("setuptools", "<81", "MMS imports pkg_resources"),
        ],
    }),
}

# A stack sagetwin has no row for: the DLC's transformers and torch, the toolkits unpinned.
GENERIC = {
    "training": (Package("sagemaker-training", "", "no row in sagetwin's table"),
                 Package("sagemaker-pytorch-training", "", "no row in sagetwin's table"),
                 Package("datasets", "", "no row in sagetwin's table"),
                 Package("accelerate", "", "no row in sagetwin's table"),
                 Package("scikit-learn", "", "no row in sagetwin's table"),
                 Package("evaluate", "", "no row in sagetwin's table")),
    "inference": (Package("sagemaker-huggingface-inference-toolkit", "<3", "no row in sagetwin's table"),
                  Package("multi-model-server", "", "no row in sagetwin's table"),
                  Package("setuptools", "<81", "MMS imports pkg_resources"),
                  Package("numpy", "<2", "no row in sagetwin's table")),
}


def dlc_packages(scope: str, transformers: str, pytorch: str, py: str) -> tuple[tuple[Package, ...], bool]:
    """The packages to install next to torch for this stack, and whether the table knows the stack."""
    row = DLC_PACKAGES.get((transformers, pytorch, py))
    if row is not None:
        return row[scope], True
    return (Package("transformers", f"=={transformers}", "the stack"), *GENERIC[scope]), False


def dlc_datasets_version(transformers: str, pytorch: str, py: str) -> str | None:
    """The ``datasets`` release the training DLC of this stack ships, where the table pins one."""
    packages, _ = dlc_packages("training", transformers, pytorch, py)
    return next((p.pin[2:] for p in packages if p.name == "datasets" and p.pin.startswith("==")), None)
