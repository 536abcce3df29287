"""``sagetwin check``: run a person's training script for a few steps under the container
contract and report, as a checklist, what would break on SageMaker."""

from __future__ import annotations

import ast
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sagetwin.core.errors import SagetwinError, TrainingError
from sagetwin.core.job import HuggingFaceJob
from sagetwin.core.progress import Reporter, SilentReporter

# name -> (arguments without context, with context), as the inference toolkit accepts them
OVERRIDES = {"model_fn": (1, 2), "input_fn": (2, 3), "predict_fn": (2, 3), "output_fn": (2, 3),
             "transform_fn": (4, 5)}
DEFAULT_CHECK_HYPERPARAMETERS = {"epochs": 1, "max_steps": 5, "model_name": "/opt/ml/input/data/model"}


@dataclass
class CheckItem:
    name: str
    ok: bool | None  # None: could not be checked (an earlier item failed)
    detail: str = ""
    fix: str = ""

    def render(self) -> str:
        mark = {True: "PASS", False: "FAIL", None: "NOTE"}[self.ok]
        text = f"[{mark}] {self.name}" + (f": {self.detail}" if self.detail else "")
        if self.fix and self.ok is False:
            text += f"\n       fix: {self.fix}"
        return text


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


def _written_elsewhere(opened: list[tuple[str, str]], run_root: Path) -> list[str]:
    root = str(run_root.resolve())
    return sorted({path for path, mode in opened
                   if ("w" in mode or "a" in mode or "x" in mode) and not path.startswith(root)
                   and "/.cache/" not in path and "__pycache__" not in path})


def run_check(entry_point: str, source_dir: str | Path, *, hyperparameters: dict[str, Any] | None = None,
              channels: dict[str, str] | None = None, reporter: Reporter | None = None) -> list[CheckItem]:
    """Run the script briefly on the process backend with an audit hook; return the checklist."""
    from sagetwin.core.data import prepare_datasets, resolve_model

    reporter = reporter or SilentReporter()
    items: list[CheckItem] = []
    source = Path(source_dir)
    model = resolve_model("tiny")
    inputs = {**prepare_datasets("sample", model.tokenizer_source, train_size=64, test_size=16),
              **model.channels(), **(channels or {})}
    hps = {**DEFAULT_CHECK_HYPERPARAMETERS, **(hyperparameters or {})}
    with tempfile.TemporaryDirectory(prefix="sagetwin-check-") as tmp:
        record = Path(tmp) / "audit.json"
        job = HuggingFaceJob(entry_point, source_dir=source, hyperparameters=hps, backend="process",
                             reporter=reporter, backend_options={"audit_record": str(record)})
        failure: TrainingError | None = None
        result = None
        try:
            result = job.fit(inputs)
        except TrainingError as exc:
            failure = exc
        audit = json.loads(record.read_text()) if record.is_file() else {"opened": [], "network": []}
        opened = [(p, m) for p, m in audit["opened"]]
        run_root = Path(result.details["run_dir"]) if result else job.backend.work_dir / "runs"
        tail = failure.log_tail if failure else ""

        usage_error = failure is not None and failure.exit_code == 2 and (
            "usage:" in tail or "unrecognized arguments" in tail or "required" in tail)
        items.append(CheckItem(
            "hyperparameters parse as --key value arguments", not usage_error,
            f"passed {' '.join(f'--{k} {v}' for k, v in sorted(hps.items()))}"
            + (f"; the script rejected them: {tail.splitlines()[-1]}" if usage_error else ""),
            "accept every hyperparameter with argparse (parse_known_args ignores extra ones)",
        ))
        if audit["network"]:
            items.append(CheckItem("runs without network access", False,
                                   f"it tried to reach {', '.join(sorted(set(audit['network'])))}",
                                   "ship models and data as input channels (model_name=/opt/ml/input/data/model) "
                                   "instead of downloading them in the job"))
        else:
            items.append(CheckItem("runs without network access", True, "no connection attempted"))
        fixed = sorted({p for p, _ in opened if p.startswith("/opt/ml")})
        data_root = str(run_root / "opt_ml" / "input" / "data")
        read_channels = result is not None and any(p.startswith(data_root) for p, _ in opened)
        if fixed or (failure and "/opt/ml/" in tail):
            items.append(CheckItem("reads data from SM_CHANNEL_* folders", False,
                                   "it opened fixed paths: " + (", ".join(fixed) or "see the log"),
                                   "use os.environ['SM_CHANNEL_TRAIN'] (and SM_CHANNEL_<NAME>) for input folders"))
        elif result is not None:
            items.append(CheckItem("reads data from SM_CHANNEL_* folders", read_channels,
                                   "read its channels" if read_channels else "never opened a file in any channel",
                                   "load the data from os.environ['SM_CHANNEL_<NAME>']"))
        else:
            items.append(CheckItem("reads data from SM_CHANNEL_* folders", None, "the script did not finish"))
        items.append(CheckItem(
            f"trains for {hps.get('max_steps')} steps under the container contract", failure is None,
            "exit code 0" if failure is None else f"exited with code {failure.exit_code}: "
            + (tail.splitlines()[-1] if tail else ""),
            "run it with --backend process to see the whole log" if failure else "",
        ))
        if result is None:
            items.append(CheckItem("writes the model to SM_MODEL_DIR", None, "the script did not finish"))
            items.append(CheckItem("the saved model loads in the inference toolkit and answers", None,
                                   "the script did not finish"))
        else:
            model_dir = run_root / "opt_ml" / "model"
            files = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else []
            elsewhere = _written_elsewhere(opened, run_root)
            items.append(CheckItem(
                "writes the model to SM_MODEL_DIR", bool(files),
                f"wrote {', '.join(files[:6])}" if files else "SM_MODEL_DIR is empty"
                + (f"; it wrote {', '.join(elsewhere[:5])} instead" if elsewhere else ""),
                "save with trainer.save_model(os.environ['SM_MODEL_DIR']) and tokenizer.save_pretrained(...)",
            ))
            items.append(_serving_item(job, result.model_data) if files else CheckItem(
                "the saved model loads in the inference toolkit and answers", None, "there is no saved model"))
    inference = next((p for p in (source / "inference.py", source / "code" / "inference.py") if p.is_file()), None)
    if inference is not None:
        problems = inference_signature_problems(inference)
        items.append(CheckItem("inference.py overrides have the toolkit's signatures", not problems,
                               "; ".join(problems) or "model_fn/input_fn/predict_fn/output_fn/transform_fn match",
                               "see the handler signatures in the Hugging Face inference toolkit"))
    return items


def _serving_item(job: HuggingFaceJob, model_data: str) -> CheckItem:
    name = "the saved model loads in the inference toolkit and answers"
    try:
        with job.deploy(model_data=model_data) as predictor:
            answer = predictor.predict({"inputs": "I loved every minute of it."})
        return CheckItem(name, True, f"answered {json.dumps(answer)[:120]}")
    except SagetwinError as exc:
        return CheckItem(name, False, exc.problem, exc.fix)


def as_json(items: list[CheckItem]) -> list[dict[str, Any]]:
    return [asdict(item) for item in items]
