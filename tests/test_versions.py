"""The stack of a job is resolved as the installed SageMaker SDK resolves it: aliases, errors."""

from __future__ import annotations

import re

import pytest

import sagetwin
from sagetwin.core.progress import SilentReporter
from sagetwin.core.versions import default_stack, resolve_stack
from tests.conftest import TRAIN_SCRIPTS

GUIDE = ("4.26", "1.13", "py39")


def sdk_retrieve(transformers: str, pytorch: str, py: str, scope: str) -> str:
    from sagetwin.sagemaker_sdk.sdk import import_sdk

    sdk = import_sdk()
    return sdk.image_uris.retrieve("huggingface", "us-east-1", version=transformers,
                                   base_framework_version=f"pytorch{pytorch}", py_version=py,
                                   instance_type="ml.p3.2xlarge" if scope == "training" else "ml.g4dn.xlarge",
                                   image_scope=scope)


@pytest.mark.parametrize("scope", ["training", "inference"])
@pytest.mark.parametrize("versions", [GUIDE, ("4.26.0", "1.13.1", "py39"), ("4.48", "2.3", "py311"),
                                      ("4.48.0", "2.3.0", "py311"), ("4.17", "1.10", "py38")])
def test_aliases_resolve_as_the_sdk_resolves_them(versions, scope):
    try:
        sdk_retrieve(*versions, scope)
    except ValueError as refused:  # e.g. the inference table has no "4.48" alias: refused alike
        with pytest.raises(sagetwin.ConfigurationError) as ours:
            resolve_stack(*versions, scope=scope)
        assert ours.value.problem == str(refused)
        return
    stack = resolve_stack(*versions, scope=scope)
    # the SDK tags an aliased request with the alias (1.13-transformers4.26-...): the same image as the
    # full versions it stands for, which is what sagetwin resolves to and asks the SDK for
    as_asked = sdk_retrieve(*versions, scope)
    resolved = sdk_retrieve(stack.transformers, stack.pytorch, stack.py, scope)
    assert as_asked.replace(f":{versions[1]}-transformers{versions[0]}-",
                            f":{stack.pytorch}-transformers{stack.transformers}-") == resolved
    match = re.search(r":([0-9.]+)-transformers([0-9.]+)-(?:gpu|cpu)-(py\d+)", resolved)
    assert match and match.groups() == (stack.pytorch, stack.transformers, stack.py), resolved


@pytest.mark.parametrize("versions", [("4.99", "1.13", "py39"), ("4.26", "2.0", "py39"), ("4.26", "1.13", "py311")])
def test_unsupported_versions_get_the_sdks_error(versions):
    with pytest.raises(ValueError) as sdk:
        sdk_retrieve(*versions, "training")
    with pytest.raises(sagetwin.ConfigurationError) as ours:
        resolve_stack(*versions, scope="training")
    assert ours.value.problem == str(sdk.value)


def test_the_guides_arguments_are_accepted_and_printed_once_resolved():
    said: list[str] = []

    class Collect(SilentReporter):
        def step(self, message: str) -> None:
            said.append(message)

    job = sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="process", reporter=Collect(),
                                  transformers_version="4.26", pytorch_version="1.13", py_version="py39")
    spec = job.training_spec({})
    # resolved for printing and for the offline stack; sent as given, as the SDK's own estimator sends them
    assert (job.stack.transformers, job.stack.pytorch, job.stack.py) == ("4.26.0", "1.13.1", "py39")
    assert (spec.transformers_version, spec.pytorch_version, spec.py_version) == ("4.26", "1.13", "py39")
    with pytest.raises(sagetwin.ConfigurationError, match="Unsupported huggingface version: 9.9"):
        sagetwin.HuggingFaceJob("train.py", source_dir=TRAIN_SCRIPTS, backend="process", transformers_version="9.9")


def test_no_versions_means_the_newest_stack_for_training_and_inference():
    stack = default_stack()
    assert resolve_stack(scope="training") == stack == resolve_stack(scope="inference")
    assert stack.describe() == f"transformers {stack.transformers}, pytorch {stack.pytorch}, {stack.py}"
