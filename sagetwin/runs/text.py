"""How runs read in a terminal: the compact cells of ``sagetwin runs`` and the page of ``runs show``."""

from __future__ import annotations

import json
from typing import Any

from sagetwin.runs.curve import curve_table
from sagetwin.runs.records import LOST

LOST_WHY = ("ended without a record: its process stopped before writing how the run finished "
            "(killed, or the machine went down)")


def human_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop returns


def human_duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def stack_text(run: dict[str, Any]) -> str:
    stack = run.get("stack") if isinstance(run.get("stack"), dict) else {}
    parts = [stack.get("transformers"), stack.get("pytorch"), stack.get("py")]
    return "/".join(str(p) for p in parts) if all(parts) else "-"


def started_text(run: dict[str, Any]) -> str:
    text = str(run.get("started") or "-")
    return text[:16].replace("T", " ")  # 2024-05-01T12:03:07+00:00 -> 2024-05-01 12:03 (UTC)


def final_metrics(run: dict[str, Any]) -> dict[str, float]:
    """The run's metrics; without any, the last evaluation in its log (``eval_`` prefix dropped)."""
    metrics = {k: v for k, v in (run.get("metrics") or {}).items() if isinstance(v, (int, float))}
    if metrics:
        return metrics
    evals = [r for r in run.get("log_history") or [] if any(k.startswith("eval_") for k in r)]
    return {k.removeprefix("eval_"): v for k, v in evals[-1].items()} if evals else {}


def metrics_text(run: dict[str, Any]) -> str:
    metrics = final_metrics(run)
    parts = []
    for label, keys in (("acc", ("accuracy", "eval_accuracy")), ("f1", ("f1", "eval_f1")),
                        ("eval_loss", ("eval_loss", "loss"))):
        value = next((metrics[k] for k in keys if isinstance(metrics.get(k), (int, float))), None)
        if value is not None:
            parts.append(f"{label} {value:.3f}")
    return " ".join(parts) or "-"


def runs_table(runs: list[dict[str, Any]]) -> str:
    header = ("JOB", "BACKEND", "STACK", "STATUS", "DURATION", "METRICS", "SIZE", "STARTED (UTC)")
    rows = [header] + [(r["job_name"], str(r.get("backend") or "-"), stack_text(r), r["status"],
                        human_duration(r.get("duration_s")), metrics_text(r), human_bytes(r.get("size_bytes")),
                        started_text(r)) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    if any(r["status"] == LOST for r in runs):
        lines.append(f"\nlost: {LOST_WHY}")
    return "\n".join(lines)


def show_text(run: dict[str, Any]) -> str:
    status = f"lost, {LOST_WHY}" if run["status"] == LOST else run["status"]
    instance = f"{run.get('instance_type') or 'backend default'} x {run.get('instance_count') or 1}"
    folder = (f"{run['run_folder']} ({human_bytes(run.get('size_bytes'))})" if run.get("run_folder")
              else "none on this machine")
    fields = [("job", run["job_name"]), ("backend", run.get("backend")), ("status", status),
              ("stack", stack_text(run)), ("instance", instance), ("entry point", run.get("entry_point")),
              ("source dir", run.get("source_dir")), ("started", run.get("started")),
              ("finished", run.get("finished")), ("duration", human_duration(run.get("duration_s"))),
              ("model_data", run.get("model_data")), ("output_data", run.get("output_data")),
              ("run folder", folder), ("error", run.get("error")),
              ("hyperparameters", json.dumps(run["hyperparameters"]) if run.get("hyperparameters") else None)]
    fields += [(k.replace("_", " "), v) for k, v in (run.get("details") or {}).items() if k != "run_dir"]
    if not run.get("recorded", True):
        fields.append(("record", "none: this folder predates run records; what is shown comes from its files"))
    lines = [f"{name:<16} {value}" for name, value in fields if value not in (None, "")]
    metrics = final_metrics(run)
    lines.append("\nfinal metrics" if metrics else "\nfinal metrics    none recorded")
    lines += [f"  {k:<14} {v:.4f}" if isinstance(v, float) else f"  {k:<14} {v}" for k, v in metrics.items()]
    lines.append("\n" + curve_table(run.get("log_history") or []))
    return "\n".join(lines)
