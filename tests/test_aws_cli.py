"""The AWS CLI against the twin, as shell users write a SageMaker workflow
(`cli_workflow/train_and_invoke.sh`): `aws s3`, `aws sagemaker create-training-job` with the
Hugging Face training image, the job's log from `aws logs`, `create-model` → `create-endpoint-config`
→ `create-endpoint`, `aws sagemaker-runtime invoke-endpoint`, and the deletes; through
`sagetwin exec`, nothing is left running."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.test_aws_twin import leftovers
from tests.test_opt_ml_paths import KERNEL_ALLOWS_NAMESPACES

HERE = Path(__file__).parent
AWS_CLI = Path(sys.executable).with_name("aws")  # the test extras install it next to this Python


@pytest.mark.slow
@pytest.mark.skipif(not KERNEL_ALLOWS_NAMESPACES, reason="this kernel refuses mount namespaces")
def test_a_workflow_written_with_the_aws_cli_trains_deploys_and_invokes_on_process(tiny_model, tmp_path):
    assert AWS_CLI.is_file(), "the AWS CLI comes with the test extras: pip install -e '.[test]'"
    since = time.time() - 0.1
    path = os.pathsep.join([str(AWS_CLI.parent), os.environ.get("PATH", "")])
    result = run_cli("exec", "--backend", "process", "--no-persist", "--", "bash",
                     str(HERE / "cli_workflow" / "train_and_invoke.sh"), str(HERE / "sdk_v3" / "source"),
                     str(tiny_model.local_path), str(tmp_path), env={"PATH": path, "AWS_PAGER": ""}, timeout=900)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert not leftovers(since), "the twin of `sagetwin exec`, its job and its endpoint end with it"
    lines = out.splitlines()
    assert any(line.startswith("cli-workflow-") and line.endswith("\tCompleted") for line in lines), out[-3000:]
    # the job's own lines, from CloudWatch Logs through `aws logs get-log-events`
    assert [line for line in lines if line.startswith(("epoch ", "model saved"))] == [
        "epoch 1 of 2", "epoch 2 of 2", "model saved to /opt/ml/model"]
    [answer] = [line[len("ANSWER "):] for line in lines if line.startswith("ANSWER ")]
    [prediction] = json.loads(answer)
    assert prediction["label"] in ("POSITIVE", "NEGATIVE") and 0.0 <= prediction["score"] <= 1.0
    assert "ENDPOINTS LEFT 0" in lines, "the script's own deletes took its endpoint away"
