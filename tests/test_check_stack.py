"""`sagetwin check` judges a script against the job's target stack, not this host."""

from __future__ import annotations

import json

import pytest

from sagetwin.backends.process.api_changes import api_problems
from tests.conftest import REPO, run_cli

GUIDE_STYLE = REPO / "tests" / "guide_style"


def test_api_changes_are_judged_against_the_target_transformers():
    script = GUIDE_STYLE / "train.py"
    assert api_problems(script, "4.26.0") == [] and api_problems(script, "4.48.0") == []
    problems = api_problems(script, "4.56.2")
    assert len(problems) == 1 and "evaluation_strategy=...) was removed in transformers 4.51.0" in problems[0]
    assert any("tokenizer=...) was removed in transformers 5.0.0" in p for p in api_problems(script, "5.0.0"))
    newer = script.parent.parent / "guide_style_newer.py"
    newer.write_text(script.read_text().replace("evaluation_strategy=", "eval_strategy="))
    try:
        assert "only exists from transformers 4.41.0" in api_problems(newer, "4.26.0")[0]
    finally:
        newer.unlink()


@pytest.mark.slow
@pytest.mark.parametrize(("versions", "code", "api_ok"), [
    (["--transformers", "4.26", "--pytorch", "1.13", "--py", "py39"], 0, True),
    (["--transformers", "4.56"], 1, False),
])
def test_the_guide_style_script_is_judged_for_its_stack(versions, code, api_ok):
    result = run_cli("check", "train.py", "--source-dir", str(GUIDE_STYLE), *versions)
    assert result.returncode == code, result.stdout + result.stderr[-2000:]
    listed = run_cli("check", "train.py", "--source-dir", str(GUIDE_STYLE), "--json", *versions)
    items = {item["name"].split(" that ")[0]: item for item in json.loads(listed.stdout)}
    assert items["uses transformers APIs"]["ok"] is api_ok
    training = next(item for name, item in items.items() if name.startswith("trains for"))
    assert training["ok"] is None and "here," in training["detail"]  # this host's failure is not the verdict
    passed = sum(1 for item in items.values() if item["ok"] is True)
    failed = sum(1 for item in items.values() if item["ok"] is False)
    if failed:
        assert f"{passed} of {len(items)} checks passed, {failed} failed" in result.stdout
    else:
        assert f"all {passed} judged checks passed" in result.stdout
