"""``sagetwin check``: run a person's training script for a few steps under the container
contract on the ``process`` backend, and report, as a checklist, what would break on SageMaker."""

from __future__ import annotations

import ast
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagetwin.backends.process.api_changes import api_problems
from sagetwin.backends.process.audit_files import network_record, read_lines, spawn_record
from sagetwin.backends.process.backend import ProcessBackend
from sagetwin.backends.process.drift import Drift, drift, drift_fix
from sagetwin.core.backend import Check
from sagetwin.core.errors import SagetwinError, TrainingError
from sagetwin.core.paths import unique_name
from sagetwin.core.predictor import Predictor
from sagetwin.core.progress import Reporter, SilentReporter
from sagetwin.core.spec import DeploySpec, TrainingResult, TrainingSpec, check_hyperparameters, locate_entry_point
from sagetwin.core.versions import Stack, default_stack
from sagetwin.guide.data import prepare_datasets, resolve_model

# name -> (arguments without context, with context), as the inference toolkit accepts them
OVERRIDES = {"model_fn": (1, 2), "input_fn": (2, 3), "predict_fn": (2, 3), "output_fn": (2, 3),
             "transform_fn": (4, 5)}
DEFAULT_CHECK_HYPERPARAMETERS = {"epochs": 1, "max_steps": 5, "model_name": "/opt/ml/input/data/model"}
SERVES = "the saved model loads in the inference toolkit and answers"
UNFINISHED = "the script did not finish"


def inference_signature_problems(source: Path) -> list[str]:
    """Wrong names/arity in inference.py, checked statically (nothing is imported)."""
    tree = ast.parse(source.read_text(), filename=str(source))
    functions = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    problems = []
    for name, allowed in OVERRIDES.items():
        node = functions.get(name)
        if node is None:
            continue
        count = len(node.args.posonlyargs) + len(node.args.args)
        if count not in allowed:
            problems.append(f"{name} takes {count} argument(s); the toolkit calls it with {allowed[0]} "
                            f"(or {allowed[1]} with context)")
    if "transform_fn" in functions and {"input_fn", "predict_fn", "output_fn"} & set(functions):
        problems.append("transform_fn cannot be combined with input_fn/predict_fn/output_fn")
    return problems


@dataclass
class CheckedRun:
    """What one audited run of the script left: its result or failure, and what it touched."""

    hyperparameters: dict[str, Any]
    run_root: Path
    result: TrainingResult | None
    failure: TrainingError | None
    opened: list[tuple[str, str]]
    network: list[str]
    spawned: list[str] = field(default_factory=list)  # programs the job's Python processes started
    shell_entry: bool = False  # a .sh entry point: what the shell runs itself is not seen
    drift: list[Drift] = field(default_factory=list)

    @property
    def tail(self) -> str:
        return self.failure.log_tail if self.failure else ""

    def written_elsewhere(self) -> list[str]:
        root = str(self.run_root.resolve())
        return sorted({path for path, mode in self.opened
                       if ("w" in mode or "a" in mode or "x" in mode) and not path.startswith(root)
                       and "/.cache/" not in path and "__pycache__" not in path})


def run_check(entry_point: str, source_dir: str | Path, *, hyperparameters: dict[str, Any] | None = None,
              channels: dict[str, str] | None = None, reporter: Reporter | None = None,
              stack: Stack | None = None, env: str = "host") -> list[Check]:
    """Run the script briefly on the process backend with an audit hook; return the checklist,
    judged against the job's target ``stack`` (the default stack unless given)."""
    stack = stack or default_stack()
    reporter = reporter or SilentReporter()
    source = Path(source_dir)
    locate_entry_point(entry_point, source)  # a wrong name fails before any data is prepared
    model = resolve_model("tiny")
    inputs = {**prepare_datasets("sample", model.tokenizer_source, train_size=64, test_size=16),
              **model.channels(), **(channels or {})}
    hps = {**DEFAULT_CHECK_HYPERPARAMETERS, **(hyperparameters or {})}
    with tempfile.TemporaryDirectory(prefix="sagetwin-check-") as tmp:
        backend = ProcessBackend(audit_record=str(Path(tmp) / "audit.json"), env=env)
        entry, folder = locate_entry_point(entry_point, source)
        spec = TrainingSpec(job_name=unique_name("check"), entry_point=entry, source_dir=folder,
                            hyperparameters=check_hyperparameters(hps), inputs=inputs,
                            transformers_version=stack.transformers, pytorch_version=stack.pytorch,
                            py_version=stack.py)
        run = _audited_run(backend, spec, reporter)
        run.drift = drift(stack) if env == "host" else []
        items = [_api_item(folder / entry, stack), _hyperparameters_item(run), _network_item(run),
                 _channels_item(run), _training_item(run, stack), *_model_items(run, backend, reporter)]
    inference = next((p for p in (source / "inference.py", source / "code" / "inference.py") if p.is_file()), None)
    if inference is not None:
        problems = inference_signature_problems(inference)
        items.append(Check(not problems,
                           "; ".join(problems) or "model_fn/input_fn/predict_fn/output_fn/transform_fn match",
                           "see the handler signatures in the Hugging Face inference toolkit",
                           name="inference.py overrides have the toolkit's signatures"))
    return items


def _audited_run(backend: ProcessBackend, spec: TrainingSpec, reporter: Reporter) -> CheckedRun:
    result = failure = None
    try:
        result = backend.fit(spec, reporter)
    except TrainingError as exc:
        failure = exc
    record = Path(backend.audit_record or "")
    audit = json.loads(record.read_text()) if record.is_file() else {"opened": []}
    run_root = Path(result.details["run_dir"]) if result else backend.work_dir / "runs"
    return CheckedRun(spec.hyperparameters, run_root, result, failure, [(p, m) for p, m in audit["opened"]],
                      read_lines(network_record(str(record))), spawned=read_lines(spawn_record(str(record))),
                      shell_entry=spec.entry_point.endswith(".sh"))


def _hyperparameters_item(run: CheckedRun) -> Check:
    tail = run.tail
    usage_error = run.failure is not None and run.failure.exit_code == 2 and (
        "usage:" in tail or "unrecognized arguments" in tail or "required" in tail)
    passed = " ".join(f"--{k} {v}" for k, v in sorted(run.hyperparameters.items()))
    return Check(not usage_error,
                 f"passed {passed}" + (f"; the script rejected them: {tail.splitlines()[-1]}" if usage_error else ""),
                 "accept every hyperparameter with argparse (parse_known_args ignores extra ones)",
                 name="hyperparameters parse as --key value arguments")


def _network_item(run: CheckedRun) -> Check:
    """Python processes of the job are guarded; other programs cannot be: the verdict says so
    rather than pass what it did not see."""
    name = "runs without network access"
    if run.network:
        return Check(False, f"it tried to reach {', '.join(sorted(set(run.network)))}",
                     "ship models and data as input channels (model_name=/opt/ml/input/data/model) "
                     "instead of downloading them in the job", name=name)
    unseen = {p for p in run.spawned if not _is_python(p) and not _local_only(p)}
    if run.shell_entry:
        unseen.add("the .sh entry point's own commands")
    unseen = sorted(unseen)
    if unseen:
        return Check(None, "no Python process of the job attempted a connection; not checked: "
                     + ", ".join(unseen[:5]) + (f" and {len(unseen) - 5} more" if len(unseen) > 5 else ""),
                     "make sure those programs need no network: SageMaker jobs often run without internet",
                     name=name)
    return Check(True, "no connection attempted (every Python process of the job was guarded)", name=name)


# Programs libraries start to learn about the machine (torch and accelerate run lscpu, for instance):
# they read local state only, so they are not reported as unchecked network use.
LOCAL_ONLY_TOOLS = frozenset({"lscpu", "nproc", "uname", "nvidia-smi", "ldconfig", "hostname", "id", "free",
                              "which", "ps", "getconf", "rocm-smi", "sysctl"})


def _local_only(program: str) -> bool:
    return Path(program.split()[0]).name in LOCAL_ONLY_TOOLS


def _is_python(program: str) -> bool:
    return re.fullmatch(r"python[\d.]*", Path(program.split()[0]).name) is not None


def _channels_item(run: CheckedRun) -> Check:
    name = "reads data from SM_CHANNEL_* folders"
    fixed = sorted({p for p, _ in run.opened if p.startswith("/opt/ml")})
    if fixed or (run.failure and "/opt/ml/" in run.tail):
        return Check(False, "it opened fixed paths: " + (", ".join(fixed) or "see the log"),
                     "use os.environ['SM_CHANNEL_TRAIN'] (and SM_CHANNEL_<NAME>) for input folders", name=name)
    if run.result is None:
        return Check(None, UNFINISHED, name=name)
    data_root = str(run.run_root / "opt_ml" / "input" / "data")
    read = any(p.startswith(data_root) for p, _ in run.opened)
    return Check(read, "read its channels" if read else "never opened a file in any channel",
                 "load the data from os.environ['SM_CHANNEL_<NAME>']", name=name)


def _training_item(run: CheckedRun, stack: Stack) -> Check:
    failure = run.failure
    name = f"trains for {run.hyperparameters.get('max_steps')} steps under the container contract"
    if failure is None:
        return Check(True, "exit code 0", name=name)
    last = run.tail.splitlines()[-1] if run.tail else ""
    if run.drift:  # this host is not the stack: its failure is not SageMaker's verdict
        return Check(None, f"failed on this host ({'; '.join(d.render() for d in run.drift)}): {last}; "
                           "not judged for the job's stack", drift_fix(run.drift, stack), name=name)
    return Check(False, f"exited with code {failure.exit_code}: {last}", failure.fix, name=name)


def _api_item(script: Path, stack: Stack) -> Check:
    problems = api_problems(script, stack.transformers) if script.suffix == ".py" else []
    return Check(not problems, "; ".join(problems) or f"no API that transformers {stack.transformers} lacks",
                 "use the names the job's transformers version has (or change transformers_version)",
                 name=f"uses transformers APIs that {stack.transformers} has")


def _model_items(run: CheckedRun, backend: ProcessBackend, reporter: Reporter) -> list[Check]:
    saved = "writes the model to SM_MODEL_DIR"
    if run.result is None:
        return [Check(None, UNFINISHED, name=saved), Check(None, UNFINISHED, name=SERVES)]
    model_dir = run.run_root / "opt_ml" / "model"
    files = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else []
    elsewhere = run.written_elsewhere()
    written = Check(bool(files), f"wrote {', '.join(files[:6])}" if files else "SM_MODEL_DIR is empty"
                    + (f"; it wrote {', '.join(elsewhere[:5])} instead" if elsewhere else ""),
                    "save with trainer.save_model(os.environ['SM_MODEL_DIR']) and tokenizer.save_pretrained(...)",
                    name=saved)
    served = _serving_item(backend, run.result.model_data, reporter) if files else Check(
        None, "there is no saved model", name=SERVES)
    return [written, served]


def _serving_item(backend: ProcessBackend, model_data: str, reporter: Reporter) -> Check:
    spec = DeploySpec(endpoint_name=unique_name("check-ep"), model_data=model_data)
    try:
        with Predictor(backend.deploy(spec, reporter), backend.name) as predictor:
            answer = predictor.predict({"inputs": "I loved every minute of it."})
        return Check(True, f"answered {json.dumps(answer)[:120]}", name=SERVES)
    except SagetwinError as exc:
        return Check(False, exc.problem, exc.fix, name=SERVES)
