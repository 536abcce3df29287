"""The SageMaker training-container contract, as the process backend presents it to a script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sagetwin
from sagetwin.core.progress import SilentReporter
from sagetwin.emulation import contract

ENV_DUMP_SCRIPT = '''
import json, os, sys
out = {"argv": sys.argv[1:], "env": {k: v for k, v in os.environ.items() if k.startswith("SM_")},
       "cwd": os.getcwd(), "pythonpath": os.environ.get("PYTHONPATH", ""),
       "channels": {c: {n: open(os.path.join(os.environ["SM_CHANNEL_" + c.upper()], n)).read()
                        for n in os.listdir(os.environ["SM_CHANNEL_" + c.upper()])}
                    for c in json.loads(os.environ["SM_CHANNELS"])}}
model_dir = os.environ["SM_MODEL_DIR"]
with open(os.path.join(model_dir, "seen.json"), "w") as f:
    json.dump(out, f)
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.json"), "w") as f:
    json.dump({"accuracy": 0.75}, f)
'''


def test_hyperparameters_round_trip_like_the_sdk_and_toolkit():
    hps = {"epochs": 1, "lr": 5e-5, "name": "distilbert-base-uncased", "flag": True, "layers": [1, 2]}
    encoded = contract.encode_hyperparameters(hps)
    assert encoded == {"epochs": "1", "lr": "5e-05", "name": '"distilbert-base-uncased"', "flag": "true",
                       "layers": "[1, 2]"}
    assert contract.decode_hyperparameters(encoded) == hps
    assert contract.decode_hyperparameters({"raw": "not json"}) == {"raw": "not json"}


def test_cmd_args_are_sorted_str_values_without_sagemaker_keys():
    hps = {"model_name": "m", "epochs": 2, "sagemaker_program": "train.py", "flag": True}
    args = contract.to_cmd_args(contract.user_hyperparameters(hps))
    assert args == ["--epochs", "2", "--flag", "True", "--model_name", "m"]


def test_opt_ml_values_are_mapped_onto_the_run_folder(tmp_path: Path):
    mapped = contract.map_opt_ml({"model_name": "/opt/ml/input/data/model", "other": "/opt/mlx",
                                  "nested": ["/opt/ml/model"]}, tmp_path)
    assert mapped == {"model_name": f"{tmp_path}/input/data/model", "other": "/opt/mlx",
                      "nested": [f"{tmp_path}/model"]}


@pytest.mark.parametrize("paths", ["opt_ml", "mapped"])
def test_process_backend_gives_the_script_the_full_contract(tmp_path: Path, no_leftover_processes, paths):
    """``opt_ml``: the script sees SageMaker's own paths (its run folder at /opt/ml); ``mapped``
    (where the kernel refuses namespaces): the same contract on the run folder's paths."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "dump.py").write_text(ENV_DUMP_SCRIPT)
    train = tmp_path / "train-data"
    train.mkdir()
    (train / "part-0.txt").write_text("hello")
    single_file = tmp_path / "test.csv"
    single_file.write_text("text,label\n")
    hps = {"epochs": 2, "model_name": "/opt/ml/input/data/model", "sagemaker_program": "dump.py",
           "learning_rate": 0.001}
    job = sagetwin.HuggingFaceJob("dump.py", source_dir=code, hyperparameters=hps, backend="process",
                                  reporter=SilentReporter(), backend_options={"paths": paths})
    result = job.fit({"train": str(train), "test": single_file.as_uri(), "model": str(train)})

    run_dir = Path(result.details["run_dir"])
    root = run_dir / "opt_ml"
    seen_root = "/opt/ml" if paths == "opt_ml" else str(root)
    seen = json.loads((root / "model" / "seen.json").read_text())
    env = seen["env"]
    assert seen["argv"] == ["--epochs", "2", "--learning_rate", "0.001", "--model_name",
                            f"{seen_root}/input/data/model"]
    assert env["SM_MODEL_DIR"] == f"{seen_root}/model"
    assert env["SM_OUTPUT_DATA_DIR"] == f"{seen_root}/output/data"
    assert env["SM_OUTPUT_DIR"] == f"{seen_root}/output"
    assert env["SM_INPUT_DIR"] == f"{seen_root}/input"
    assert env["SM_INPUT_CONFIG_DIR"] == f"{seen_root}/input/config"
    assert env["SM_CHANNEL_TRAIN"] == f"{seen_root}/input/data/train"
    assert json.loads(env["SM_CHANNELS"]) == ["model", "test", "train"]
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"] and env["SM_CURRENT_HOST"] == "algo-1"
    assert json.loads(env["SM_HPS"]) == {"epochs": 2, "learning_rate": 0.001,
                                         "model_name": f"{seen_root}/input/data/model"}
    assert env["SM_HP_EPOCHS"] == "2" and env["SM_HP_MODEL_NAME"] == f"{seen_root}/input/data/model"
    assert "SM_HP_SAGEMAKER_PROGRAM" not in env
    assert json.loads(env["SM_USER_ARGS"]) == seen["argv"]
    assert int(env["SM_NUM_GPUS"]) >= 0 and int(env["SM_NUM_CPUS"]) >= 1
    assert env["SM_USER_ENTRY_POINT"] == "dump.py" and env["SM_MODULE_NAME"] == "dump"
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["hyperparameters"]["epochs"] == 2 and training_env["job_name"] == result.job_name
    assert seen["cwd"] == f"{seen_root}/code" and f"{seen_root}/code" in seen["pythonpath"]
    # channel contents reach the script; a single file becomes a folder holding it
    assert seen["channels"]["train"] == {"part-0.txt": "hello"}
    assert seen["channels"]["test"] == {"test.csv": "text,label\n"}
    assert not list((root / "input" / "data").iterdir())  # inputs are discarded with the job, as on SageMaker
    # config files as the toolkit reads them
    config = root / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text())["epochs"] == "2"
    assert json.loads((config / "resourceconfig.json").read_text())["current_host"] == "algo-1"
    assert json.loads((config / "inputdataconfig.json").read_text())["train"] == {"TrainingInputMode": "File"}
    # artifacts packed as SageMaker does; metrics read from the script's output data
    assert result.model_data.startswith("file://") and result.model_data.endswith("/output/model.tar.gz")
    assert result.metrics == {"accuracy": 0.75}
    import tarfile

    with tarfile.open(Path(result.model_data[len("file://"):])) as tar:
        assert "seen.json" in tar.getnames()


WRITES_INTO_ITS_INPUT = '''
import os
channel = os.environ["SM_CHANNEL_TRAIN"]
with open(os.path.join(channel, "part-0.txt"), "a") as f:
    f.write(" changed by the job")
os.remove(os.path.join(channel, "part-1.txt"))
open(os.path.join(os.environ["SM_MODEL_DIR"], "done"), "w").close()
'''


@pytest.mark.parametrize("limit_mb", [None, "0"], ids=["copied", "over-the-copy-limit"])
def test_a_job_that_writes_into_its_input_does_not_change_the_persons_data(tmp_path: Path, monkeypatch, limit_mb):
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(WRITES_INTO_ITS_INPUT)
    data = tmp_path / "data"
    data.mkdir()
    (data / "part-0.txt").write_text("hello")
    (data / "part-1.txt").write_text("world")
    if limit_mb is not None:
        monkeypatch.setenv("SAGETWIN_CHANNEL_COPY_LIMIT_MB", limit_mb)
    steps: list[str] = []

    class Steps(SilentReporter):
        def step(self, message: str) -> None:
            steps.append(message)

    job = sagetwin.HuggingFaceJob("train.py", source_dir=code, backend="process", reporter=Steps())
    job.fit({"train": str(data)})  # it passes, as on SageMaker, where the channel is the job's own copy
    if limit_mb is None:
        assert (data / "part-0.txt").read_text() == "hello" and (data / "part-1.txt").read_text() == "world"
        assert not [s for s in steps if "not copied" in s]
    else:  # too big to copy: linked, and the person is told what that means
        assert [s for s in steps if "channel train" in s and "not copied" in s and "changes that data" in s]


def test_requirements_txt_that_is_not_installed_is_reported(tmp_path: Path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('hi')\n")
    (code / "requirements.txt").write_text("pluggy\nsurely-not-installed-package==1.0\n")
    job = sagetwin.HuggingFaceJob("train.py", source_dir=code, backend="process", reporter=SilentReporter())
    with pytest.raises(sagetwin.ConfigurationError, match="surely-not-installed-package") as info:
        job.fit()
    assert "pip install -r" in info.value.fix
