"""On `process`, a job sees its run folder at /opt/ml as in a SageMaker container (its own mount
namespace): a script with literal /opt/ml paths saves its model where SageMaker would, the
machine's own /opt is left as it was, and two jobs at once each see only their own /opt/ml; an
endpoint's model server finds its model at /opt/ml/model the same way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

import sagetwin
from sagetwin.core.progress import SilentReporter
from sagetwin.emulation import container_paths

SCRIPTS = Path(__file__).parent / "scripts_opt_ml"
# the kernel's own answer, not sagetwin's probe: where the kernel allows namespaces, a broken probe fails
KERNEL_ALLOWS_NAMESPACES = subprocess.run(["unshare", "--user", "--mount", "true"], capture_output=True).returncode == 0
pytestmark = pytest.mark.skipif(not KERNEL_ALLOWS_NAMESPACES, reason="this kernel refuses mount namespaces")


class Lines(SilentReporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, line: str) -> None:
        self.lines.append(line)


def machine_opt() -> tuple[bool, list[str]]:
    return os.path.exists("/opt/ml"), sorted(os.listdir("/opt")) if os.path.isdir("/opt") else []


def fit(tmp_path: Path, marker: str, linger: float = 0.0, **options) -> tuple[dict, list[str]]:
    data = tmp_path / f"data-{marker}"
    data.mkdir()
    (data / "rows.txt").write_text("one\n")
    lines = Lines()
    job = sagetwin.HuggingFaceJob("train.py", source_dir=SCRIPTS, backend="process", reporter=lines,
                                  hyperparameters={"marker": marker, "linger": linger},
                                  backend_options={"work_dir": str(tmp_path / "work"), **options})
    result = job.fit({"train": str(data)})
    seen = json.loads(next(line for line in lines.lines if line.startswith("SEEN "))[len("SEEN "):])
    with tarfile.open(result.model_data.removeprefix("file://")) as tar:
        return seen, sorted(tar.getnames())


def test_the_probe_agrees_with_the_kernel(tmp_path):
    assert container_paths.available(str(tmp_path)) == (True, "")


def test_a_script_with_literal_opt_ml_paths_saves_its_model_where_sagemaker_would(tmp_path):
    before = machine_opt()
    seen, packed = fit(tmp_path, "one")
    assert packed == ["one.txt"]
    assert seen["model_files"] == ["one.txt"] and seen["sm_model_dir"] == "/opt/ml/model"
    assert seen["cwd"] == "/opt/ml/code" and seen["hostname"] == "algo-1" and seen["algo-1"] == "127.0.0.1"
    assert seen["current_host"] == "algo-1"
    assert seen["sm_channel"] == "/opt/ml/input/data/train" and seen["train_files"] == ["rows.txt"]
    assert machine_opt() == before, "the machine's own /opt is left as it was"


def test_two_jobs_at_once_each_see_only_their_own_opt_ml(tmp_path):
    before = machine_opt()
    results: dict[str, tuple[dict, list[str]]] = {}
    errors: list[BaseException] = []

    def run(marker: str) -> None:
        try:
            results[marker] = fit(tmp_path, marker, linger=1.5)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(marker,)) for marker in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    for marker in ("first", "second"):
        seen, packed = results[marker]
        assert seen["model_files"] == [f"{marker}.txt"] and packed == [f"{marker}.txt"]
    assert machine_opt() == before


def test_paths_mapped_keeps_the_run_folder_paths(tmp_path):
    with pytest.raises(sagetwin.TrainingError) as info:  # the literal default is not followed there
        fit(tmp_path, "one", paths="mapped")
    assert "/opt/ml/model" in info.value.log_tail


def test_an_unknown_paths_setting_is_refused(tmp_path):
    with pytest.raises(sagetwin.ConfigurationError, match="paths 'auto', 'opt_ml' or 'mapped'"):
        fit(tmp_path, "one", paths="container")


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_an_unprivileged_user_gets_its_own_opt_ml_too():
    """Without root the job's namespace is a user namespace that maps the user to itself: the
    files it writes are the user's outside."""
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="sagetwin-other-user-"))  # pytest's own folders are root's only
    scratch.chmod(0o755)
    try:
        check_as_nobody(scratch)
    finally:
        shutil.rmtree(scratch)


def check_as_nobody(scratch: Path) -> None:
    run, state = scratch / "run", scratch / "state"
    (run / "model").mkdir(parents=True)
    state.mkdir()
    for path in (run, run / "model", state):
        os.chown(path, 65534, 65534)
    script = ("import os, socket; open('/opt/ml/model/x', 'w').close(); "
              "print(os.getuid(), socket.gethostname(), sorted(os.listdir('/opt/ml/model')))")
    cmd = container_paths.command(["/usr/bin/env", "python3", "-c", script], run_folder=str(run), state=str(state),
                                  host="algo-2", hosts=["algo-1", "algo-2"], workdir="/")
    done = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", *cmd],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["65534", "algo-2", "['x']"]
    assert (run / "model" / "x").stat().st_uid == 65534
    assert sys.executable  # the module runs on any python3: standard library only


INFERENCE_WITH_LITERAL_PATHS = '''import json
import os


def model_fn(model_dir):
    with open("/opt/ml/model/labels.json") as labels:  # the container's path, as many handlers write it
        return {"labels": json.load(labels), "model_dir": model_dir}


def predict_fn(data, model):
    return {**model, "opt_ml": sorted(os.listdir("/opt/ml"))}
'''


def packed_model(tmp_path: Path, labels: list[str]) -> str:
    folder = tmp_path / f"model-{labels[0]}"
    (folder / "code").mkdir(parents=True)
    (folder / "labels.json").write_text(json.dumps(labels))
    (folder / "code" / "inference.py").write_text(INFERENCE_WITH_LITERAL_PATHS)
    archive = tmp_path / f"{labels[0]}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=".")
    return str(archive)


@pytest.mark.parametrize("warm", ["1", "0"], ids=["forked-from-the-warm-parent", "fresh-interpreter"])
def test_two_endpoints_at_once_each_read_their_own_model_at_opt_ml(tmp_path, monkeypatch, warm, no_leftover_processes):
    monkeypatch.setenv("SAGETWIN_WARM_SERVING", warm)
    before = machine_opt()
    work = tmp_path / "work"
    models = [sagetwin.HuggingFaceModel(model_data=packed_model(tmp_path, labels), backend="process",
                                        backend_options={"work_dir": str(work)}, reporter=SilentReporter())
              for labels in (["calm", "stormy"], ["red", "green", "blue"])]
    with models[0].deploy() as first, models[1].deploy() as second:
        answers = [first.predict({"inputs": "x"}), second.predict({"inputs": "x"})]
    assert answers == [{"labels": ["calm", "stormy"], "model_dir": "/opt/ml/model", "opt_ml": ["model"]},
                       {"labels": ["red", "green", "blue"], "model_dir": "/opt/ml/model", "opt_ml": ["model"]}]
    assert machine_opt() == before
    left = [str(p.relative_to(work)) for p in (work / "endpoints").rglob("*")
            if p.name.startswith(("opt_ml-", "container-"))]
    assert not left, f"an endpoint's /opt/ml folders outlived it: {left}"


INSTALL_AND_IMPORT = '''import glob
import importlib
import subprocess
import sys

wheel = glob.glob("/opt/ml/input/data/wheels/*.whl")[0]
subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-cache-dir", "--no-deps", "--quiet", wheel],
               check=True)
importlib.invalidate_caches()
import sagetwin_tiny_dep  # noqa: E402

print("IMPORTED", sagetwin_tiny_dep.VALUE, flush=True)
'''


def tiny_wheel(folder: Path) -> Path:
    """A wheel made here (the index is not for tests): one module, ``VALUE = 42``."""
    name, info = "sagetwin_tiny_dep", "sagetwin_tiny_dep-0.1.dist-info"
    files = {f"{name}/__init__.py": "VALUE = 42\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: sagetwin-tests\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    folder.mkdir()
    wheel = folder / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{info}/RECORD", "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"]))
    return wheel


def test_what_a_job_pip_installs_lasts_as_long_as_the_job(tmp_path):
    """As in a container: the job imports what it installed, and the environment it ran in is
    unchanged afterwards (the install went to an overlay of it, in the job's namespace)."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "install.py").write_text(INSTALL_AND_IMPORT)
    lines = Lines()
    job = sagetwin.HuggingFaceJob("install.py", source_dir=source, backend="process", reporter=lines,
                                  backend_options={"work_dir": str(tmp_path / "work")})
    job.fit({"wheels": str(tiny_wheel(tmp_path / "wheels").parent)})
    assert "IMPORTED 42" in lines.lines
    after = subprocess.run([sys.executable, "-c", "import sagetwin_tiny_dep"], capture_output=True, text=True)
    assert after.returncode != 0 and "No module named 'sagetwin_tiny_dep'" in after.stderr
