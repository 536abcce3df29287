"""A run's training curve from its log records: as a text table, and as a PNG (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagetwin.core.errors import ConfigurationError

NO_CURVE = ("no training curve: the run's log has no loss or eval records (the script logged none, "
            "or the run ended before its first logging step)")
_NOISE = ("runtime", "_per_second", "preparation_time")  # timings, not metrics


def _is_eval_metric(key: str) -> bool:
    return key.startswith("eval_") and not key.endswith(_NOISE)


def _eval_keys(history: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for record in history:
        keys += [k for k in record if _is_eval_metric(k) and k not in keys]
    return sorted(keys, key=lambda k: (k != "eval_loss", keys.index(k)))


def curve_points(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that carry a training loss or an eval metric, each with a step."""
    points = []
    for index, record in enumerate(history):
        if isinstance(record, dict) and ("loss" in record or any(map(_is_eval_metric, record))):
            points.append({**record, "step": record.get("step", index)})
    return points


def _cell(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, (int, float)) else "-"


def curve_table(history: list[dict[str, Any]]) -> str:
    points = curve_points(history)
    if not points:
        return NO_CURVE
    columns = ["step", "epoch", "loss", *_eval_keys(points)]
    rows = [columns] + [[_cell(p.get(c), 9 if c == "step" else 4) for c in columns] for p in points]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    return f"training curve ({len(points)} log records)\n" + "\n".join("  " + line for line in lines)


def _series(points: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pairs = [(p["step"], p[key]) for p in points if isinstance(p.get(key), (int, float))]
    return [s for s, _ in pairs], [v for _, v in pairs]


def plot_curve(history: list[dict[str, Any]], title: str, target: Path) -> Path:
    """Training loss (and eval loss) against step; other eval metrics on a second axis."""
    points = curve_points(history)
    if not points:
        raise ConfigurationError(f"there is nothing to plot for {title}: {NO_CURVE}.",
                                 "run `sagetwin runs show` without --plot to see the record, or log more often "
                                 "(e.g. the Trainer's logging_steps) and train again.")
    if target.suffix.lower() != ".png":
        raise ConfigurationError(f"--plot writes a PNG image, and {target} does not end in .png.",
                                 "name the file e.g. loss.png.")
    if not target.parent.is_dir():
        raise ConfigurationError(f"the folder {target.parent} for the plot does not exist.", "create it first.")
    try:
        import matplotlib  # noqa: F401 - a missing install is the likely failure: say so here
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigurationError("--plot needs matplotlib, which is not installed.",
                                 "pip install 'sagetwin[plot]'") from None
    figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")  # no pyplot: no global state, no GUI
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours = (f"C{i}" for i in range(100))  # one cycle across both axes: no two lines share a colour
    for key, label in (("loss", "training loss"), ("eval_loss", "eval loss")):
        steps, values = _series(points, key)
        if steps:
            axes.plot(steps, values, marker="o", markersize=3, label=label, color=next(colours))
    others = [k for k in _eval_keys(points) if k != "eval_loss"]
    lines = list(axes.get_lines())
    if others:
        second = axes.twinx()
        for key in others:
            lines += second.plot(*_series(points, key), marker="s", markersize=3, linestyle="--", label=key,
                                 color=next(colours))
        second.set_ylabel("eval metric")
    axes.set(title=title, xlabel="step", ylabel="loss")
    axes.grid(alpha=0.3)
    figure.legend(lines, [line.get_label() for line in lines], loc="outside lower center", ncols=min(len(lines), 4))
    figure.savefig(target, format="png")
    return target
