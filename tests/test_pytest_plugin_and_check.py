"""People test their own jobs offline: the pytest plugin's fixtures and `sagetwin check`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sagetwin.backends.process.check import inference_signature_problems
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

GOOD_TRAIN = '''
import argparse, os
import torch
from datasets import load_from_disk
from transformers import AutoModelForSequenceClassification, AutoTokenizer

parser = argparse.ArgumentParser()
parser.add_argument("--model_name", required=True)
parser.add_argument("--max_steps", type=int, default=3)
args, _ = parser.parse_known_args()

train = load_from_disk(os.environ["SM_CHANNEL_TRAIN"]).with_format(None)
tokenizer = AutoTokenizer.from_pretrained(args.model_name)
model = AutoModelForSequenceClassification.from_pretrained(args.model_name, num_labels=2)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
for step in range(args.max_steps):
    rows = train[step * 4:(step + 1) * 4]
    batch = tokenizer.pad({"input_ids": rows["input_ids"]}, return_tensors="pt")
    loss = model(**batch, labels=torch.tensor(rows["labels"])).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    print(f"step {step} loss {loss.item():.4f}")
MODEL_DIR = os.environ["SM_MODEL_DIR"]
model.save_pretrained(MODEL_DIR)
tokenizer.save_pretrained(MODEL_DIR)
'''

USER_TEST = '''
import sagetwin


def test_my_job_trains_and_answers(sagetwin_backend, sagetwin_channels, sagetwin_tiny_model, sagetwin_endpoint):
    job = sagetwin.HuggingFaceJob("train.py", source_dir="src", backend=sagetwin_backend,
                                  hyperparameters={"model_name": sagetwin_tiny_model.hyperparameter, "max_steps": 3})
    job.fit(sagetwin_channels)
    predictor = sagetwin_endpoint(job)
    answer = predictor.predict({"inputs": "what a wonderful film"})
    assert answer[0]["label"] in {"NEGATIVE", "POSITIVE"}
'''


def make_project(root: Path, train_source: str) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "train.py").write_text(train_source)
    (root / "tests").mkdir()
    (root / "tests" / "test_job.py").write_text(USER_TEST)
    return root


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600)


def test_a_fresh_project_tests_its_own_job_with_the_fixtures(tmp_path, no_leftover_processes):
    project = make_project(tmp_path / "my-project", GOOD_TRAIN)
    result = run_pytest(project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout

    check = run_cli("check", "train.py", "--source-dir", str(project / "src"), "--json")
    assert check.returncode == 0, check.stdout + check.stderr[-2000:]
    assert all(item["ok"] for item in json.loads(check.stdout))


def test_a_script_that_saves_its_model_elsewhere_is_caught(tmp_path, no_leftover_processes):
    broken = GOOD_TRAIN.replace('MODEL_DIR = os.environ["SM_MODEL_DIR"]',
                                'MODEL_DIR = "/tmp/sagetwin-test-wrong-place"')
    project = make_project(tmp_path / "broken-project", broken)

    result = run_pytest(project)
    assert result.returncode == 1
    assert "wrote nothing to SM_MODEL_DIR" in result.stdout

    check = run_cli("check", "train.py", "--source-dir", str(project / "src"))
    assert check.returncode == 1
    assert "[FAIL] writes the model to SM_MODEL_DIR" in check.stdout
    assert "/tmp/sagetwin-test-wrong-place" in check.stdout  # it says where the model went instead


FAILING_USER_TEST = '''
import json, os
import sagetwin


def test_that_fails_with_an_endpoint_up(sagetwin_backend, sagetwin_channels, sagetwin_tiny_model, sagetwin_endpoint):
    job = sagetwin.HuggingFaceJob("train.py", source_dir="src", backend=sagetwin_backend,
                                  hyperparameters={"model_name": sagetwin_tiny_model.hyperparameter, "max_steps": 3})
    job.fit(sagetwin_channels)
    predictor = sagetwin_endpoint(job)
    with open(os.environ["ENDPOINT_RECORD"], "w") as record:
        json.dump({"name": predictor.endpoint_name}, record)
    assert predictor.predict({"inputs": "fine"}) == "an answer this model never gives"


def test_runs_next_in_the_same_session():  # the endpoint must be gone by now, not only when Python exits
    with open(os.environ["ENDPOINT_RECORD"]) as record:
        name = json.load(record)["name"]
    model_dir = os.path.join(os.environ["SAGETWIN_HOME"], "endpoints", name, "model")
    with open(os.environ["ENDPOINT_RECORD"], "w") as record:
        json.dump({"name": name, "model_dir_left": os.path.exists(model_dir)}, record)
'''


def test_the_endpoint_is_deleted_when_the_users_test_fails(tmp_path, monkeypatch, no_leftover_processes):
    project = make_project(tmp_path / "p", GOOD_TRAIN)
    (project / "tests" / "test_job.py").write_text(FAILING_USER_TEST)
    monkeypatch.setenv("ENDPOINT_RECORD", str(tmp_path / "endpoint.json"))
    result = run_pytest(project)
    assert result.returncode == 1 and "1 failed, 1 passed" in result.stdout, result.stdout[-2000:]
    assert json.loads((tmp_path / "endpoint.json").read_text())["model_dir_left"] is False


def test_unknown_backend_option_lists_the_installed_ones(tmp_path):
    project = make_project(tmp_path / "p", GOOD_TRAIN)
    result = run_pytest(project, "--sagetwin-backend", "nosuch")
    assert result.returncode != 0
    assert "unknown backend 'nosuch'" in result.stdout and "process" in result.stdout


def test_a_backend_that_cannot_run_skips_unless_the_ci_requires_it(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p", GOOD_TRAIN)
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for flag in ("SAGETWIN_REQUIRE_BACKEND", "SAGETWIN_REQUIRE_DOCKER"):  # CI sets the latter
        monkeypatch.delenv(flag, raising=False)
    skipped = run_pytest(project, "--sagetwin-backend", "sagemaker", "-rs")
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout and "no AWS credentials" in skipped.stdout
    monkeypatch.setenv("SAGETWIN_REQUIRE_BACKEND", "1")
    required = run_pytest(project, "--sagetwin-backend", "sagemaker")
    assert required.returncode == 1 and "SAGETWIN_REQUIRE_BACKEND" in required.stdout, required.stdout[-2000:]
    assert "no AWS credentials" in required.stdout


def check_items(tmp_path: Path, source: str, *extra: str) -> dict[str, dict]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(source)
    result = run_cli("check", "train.py", "--source-dir", str(src), "--json", *extra)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    return {item["name"].split(" ")[0] + " " + item["name"].split(" ")[1]: item for item in json.loads(result.stdout)}


def test_check_names_network_access_fixed_paths_and_rejected_hyperparameters(tmp_path):
    items = check_items(tmp_path, GOOD_TRAIN.replace(
        "train = load_from_disk", "import urllib.request\ntry:\n    urllib.request.urlopen('https://huggingface.co', "
        "timeout=5)\nexcept OSError:\n    pass\ntrain = load_from_disk"))
    assert items["runs without"]["ok"] is False and "huggingface.co" in items["runs without"]["detail"]

    items = check_items(tmp_path, GOOD_TRAIN.replace('os.environ["SM_CHANNEL_TRAIN"]', '"/opt/ml/input/data/train"'))
    assert items["reads data"]["ok"] is False and "SM_CHANNEL_TRAIN" in items["reads data"]["fix"]

    strict = GOOD_TRAIN.replace('parser.add_argument("--max_steps", type=int, default=3)\nargs, _ = '
                                'parser.parse_known_args()', "args = parser.parse_args()")
    items = check_items(tmp_path, strict)
    assert items["hyperparameters parse"]["ok"] is False
    assert "unrecognized arguments" in items["hyperparameters parse"]["detail"]


def test_check_guards_the_network_of_every_python_process_and_names_what_it_could_not_see(tmp_path):
    child = ("import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'import urllib.request\\ntry:\\n    "
             "urllib.request.urlopen(\"http://example.com\", timeout=5)\\nexcept OSError:\\n    pass'])\n"
             "train = load_from_disk")
    items = check_items(tmp_path, GOOD_TRAIN.replace("train = load_from_disk", child))
    assert items["runs without"]["ok"] is False and "example.com" in items["runs without"]["detail"]

    other = "import subprocess\nsubprocess.run(['/bin/true'])\ntrain = load_from_disk"
    items = check_items(tmp_path, GOOD_TRAIN.replace("train = load_from_disk", other))
    assert items["runs without"]["ok"] is None  # not a pass: a program that is not Python was not guarded
    assert "not checked: /bin/true" in items["runs without"]["detail"]


def test_inference_signatures_are_checked_statically(tmp_path):
    good = tmp_path / "good.py"
    good.write_text("def model_fn(model_dir, context=None):\n    pass\n\ndef predict_fn(data, model):\n    pass\n")
    assert inference_signature_problems(good) == []
    bad = tmp_path / "bad.py"
    bad.write_text("def model_fn():\n    pass\n\ndef transform_fn(a, b, c, d):\n    pass\n\n"
                   "def input_fn(data, content_type):\n    pass\n")
    problems = inference_signature_problems(bad)
    assert "model_fn takes 0 argument(s); the toolkit calls it with 1 (or 2 with context)" in problems
    assert "transform_fn cannot be combined with input_fn/predict_fn/output_fn" in problems


EVERY_ENDPOINT_TEST = '''
import os


class Predictor:
    def __init__(self, name):
        self.name, self.deleted = name, False

    def delete_endpoint(self):
        if self.name.startswith("stuck"):
            raise RuntimeError(f"{self.name} could not be deleted")
        self.deleted = True
        with open(os.environ["DELETED_RECORD"], "a") as record:
            record.write(self.name + "\\n")


class Job:
    def __init__(self, name):
        self.name = name

    def deploy(self):
        return Predictor(self.name)


def test_three_endpoints(sagetwin_endpoint):
    for name in ("stuck-1", "fine", "stuck-2"):
        sagetwin_endpoint(Job(name))
'''


def test_the_endpoint_fixture_deletes_every_endpoint_when_one_delete_fails(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p", GOOD_TRAIN)
    (project / "tests" / "test_job.py").write_text(EVERY_ENDPOINT_TEST)
    monkeypatch.setenv("DELETED_RECORD", str(tmp_path / "deleted.txt"))
    result = run_pytest(project)
    assert result.returncode == 1 and "1 passed, 1 error" in result.stdout, result.stdout[-2000:]
    assert (tmp_path / "deleted.txt").read_text() == "fine\n"  # the one after a failed delete was deleted
    assert "stuck-1 could not be deleted" in result.stdout  # the first failure is raised
    assert "another endpoint could not be deleted either: stuck-2 could not be deleted" in result.stdout
