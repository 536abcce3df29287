"""Transformers APIs that came and went, checked in a script against the job's target stack
(statically: nothing is imported), so `sagetwin check` judges what SageMaker would run, not
what this host happens to have installed."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ApiChange:
    call: str  # the class or function, as the script names it
    keyword: str
    added_in: str = ""
    removed_in: str = ""
    instead: str = ""


# Declarative. Read from the released wheels (transformers/training_args.py and trainer.py): the
# deprecation message says evaluation_strategy goes in 4.46, but 4.50.0 still has it and 4.51.0 not.
API_CHANGES = (
    ApiChange("TrainingArguments", "evaluation_strategy", removed_in="4.51.0", instead="eval_strategy"),
    ApiChange("TrainingArguments", "eval_strategy", added_in="4.41.0", instead="evaluation_strategy"),
    ApiChange("Trainer", "tokenizer", removed_in="5.0.0", instead="processing_class"),
    ApiChange("Trainer", "processing_class", added_in="4.46.0", instead="tokenizer"),
    ApiChange("TrainingArguments", "use_mps_device", removed_in="5.0.0", instead="nothing (MPS is used when present)"),
)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in text.split(".")[:3])


def _called_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def api_problems(script: Path, transformers: str) -> list[str]:
    """Keyword arguments the target transformers does not have (yet, or any more)."""
    target = _version(transformers)
    problems = []
    for node in ast.walk(ast.parse(script.read_text(), filename=str(script))):
        if not isinstance(node, ast.Call):
            continue
        keywords = {kw.arg for kw in node.keywords if kw.arg}
        for change in API_CHANGES:
            if change.call != _called_name(node) or change.keyword not in keywords:
                continue
            if change.removed_in and target >= _version(change.removed_in):
                problems.append(f"line {node.lineno}: {change.call}({change.keyword}=...) was removed in "
                                f"transformers {change.removed_in} (the job targets {transformers}); "
                                f"use {change.instead}")
            if change.added_in and target < _version(change.added_in):
                problems.append(f"line {node.lineno}: {change.call}({change.keyword}=...) only exists from "
                                f"transformers {change.added_in} (the job targets {transformers}); "
                                f"use {change.instead}")
    return problems
