"""Exact parity: the guide's stack (transformers 4.26, PyTorch 1.13, py39) and the default stack
run in local images at the DLC's versions; process names the drift of this host."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import sagetwin
from sagetwin.core.progress import SilentReporter
from sagetwin.core.versions import resolve_stack
from tests.conftest import REPO

GUIDE_SCRIPTS = REPO / "tests" / "guide_style"
GUIDE = {"transformers_version": "4.26", "pytorch_version": "1.13", "py_version": "py39"}


class Said(SilentReporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, message: str) -> None:
        self.lines.append(message)

    def log(self, line: str) -> None:
        self.lines.append(line)


def guide_job(backend: str, model, reporter, **versions) -> sagetwin.HuggingFaceJob:
    return sagetwin.HuggingFaceJob("train.py", source_dir=GUIDE_SCRIPTS, backend=backend, reporter=reporter,
                                   hyperparameters={"epochs": 1, "train_batch_size": 32,
                                                    "model_name": model.hyperparameter}, **versions)


def test_process_names_the_drift_when_the_guides_script_fails_on_this_host(sample_channels, tiny_model):
    import transformers

    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("this host's transformers still has evaluation_strategy")
    said = Said()
    with pytest.raises(sagetwin.TrainingError) as info:
        guide_job("process", tiny_model, said, **GUIDE).fit(sample_channels)
    assert "evaluation_strategy" in info.value.log_tail
    assert f"transformers {transformers.__version__} here, 4.26.0 in the job's stack" in info.value.fix
    assert "--backend local" in info.value.fix
    assert any("this host differs from the job's stack" in line for line in said.lines)


@pytest.mark.slow
def test_the_stacks_own_environment_runs_what_only_that_stack_has(sample_channels, tiny_model):
    """transformers 4.48 (py311, this host's Python) still has TrainingArguments(evaluation_strategy=) and
    Trainer(tokenizer=): the guide-style job passes in the stack's cached environment, as on SageMaker,
    where this host's transformers 5 fails it (the drift test above)."""
    stack = resolve_stack("4.48.0", "2.3.0", "py311")
    if stack.python != f"{sys.version_info.major}.{sys.version_info.minor}":
        pytest.skip("the stack's Python is not this host's")
    said = Said()
    job = sagetwin.HuggingFaceJob(
        "train.py", source_dir=GUIDE_SCRIPTS, backend="process", reporter=said,
        hyperparameters={"epochs": 1, "train_batch_size": 32, "model_name": tiny_model.hyperparameter},
        transformers_version="4.48.0", pytorch_version="2.3.0", py_version="py311",
        backend_options={"env": "stack"})
    result = job.fit(sample_channels)  # evaluation_strategy and Trainer(tokenizer=) still exist in 4.48
    assert set(result.metrics) >= {"accuracy", "f1"}
    assert not any("this host differs" in line for line in said.lines)
    with job.deploy() as predictor:
        assert predictor.predict({"inputs": "great"})[0]["label"] in {"NEGATIVE", "POSITIVE"}
    versions = subprocess.run([job.backend._python(stack, said), "-c",
                               "import torch, transformers; print(torch.__version__, transformers.__version__)"],
                              capture_output=True, text=True, check=True).stdout.split()
    assert versions[0].split("+")[0] == "2.3.0" and versions[1] == "4.48.0"


def test_local_image_recipes_are_exact_for_the_default_and_the_guides_stack():
    from sagetwin.backends.local import images

    for stack in (resolve_stack(), resolve_stack("4.26", "1.13", "py39")):
        for scope in ("training", "inference"):
            rec = images.recipe(scope, stack)
            assert rec.parity_line() == "exact", (scope, stack, rec.parity_line())
            assert rec.python == stack.python and rec.torch == stack.pytorch
    cpu = images.recipe("training", resolve_stack(), torch="cpu")
    assert "pytorch 2.13.0 (CPU build) (cloud DLC: 2.3.0)" in cpu.parity_line()
    assert images.recipe("training", resolve_stack("4.36", "2.1", "py310")).parity_line().startswith(
        "python 3.11 (nearest Debian has) (cloud DLC: 3.10)")


def test_sagemaker_gets_the_sdks_image_uris_for_the_guides_arguments(monkeypatch, tmp_path, tiny_model):
    from sagetwin.backends.sagemaker.backend import SageMakerBackend

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    job = guide_job("process", tiny_model, SilentReporter(), **GUIDE)
    requests = SageMakerBackend(role="arn:aws:iam::000000000000:role/SageMakerRole").dry_run(
        job.training_spec({"train": str(tmp_path)}), None, SilentReporter())
    # what the SDK's own HuggingFace estimator and model ask for with the guide's arguments (aliases as given)
    from sagemaker import image_uris

    def sdk_image(scope: str, instance_type: str) -> str:
        return image_uris.retrieve("huggingface", "us-east-1", version=GUIDE["transformers_version"],
                                   base_framework_version=f"pytorch{GUIDE['pytorch_version']}",
                                   py_version=GUIDE["py_version"], instance_type=instance_type, image_scope=scope)

    image = requests[0]["request"]["AlgorithmSpecification"]["TrainingImage"]
    assert image == sdk_image("training", "ml.p3.2xlarge")
    assert image.endswith("/huggingface-pytorch-training:1.13-transformers4.26-gpu-py39-cu117-ubuntu20.04")
    container = requests[1]["request"]["PrimaryContainer"]["Image"]
    assert container == sdk_image("inference", "ml.g4dn.xlarge")
    assert json.loads(requests[0]["request"]["HyperParameters"]["epochs"]) == 1
