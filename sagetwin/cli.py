"""``sagetwin`` command line: run the guide's workflow, inspect backends."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

from sagetwin.core.errors import SagetwinError
from sagetwin.core.progress import StreamReporter


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Keep stdout for the one JSON document: anything else printed (even by plugins) goes to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _cmd_run(args: argparse.Namespace) -> int:
    from sagetwin.core.workflow import WorkflowOptions, run_workflow

    options = WorkflowOptions(
        backend=args.backend, model=args.model, dataset=args.dataset, epochs=args.epochs,
        max_steps=args.max_steps, train_batch_size=args.train_batch_size, learning_rate=args.learning_rate,
        train_size=args.train_size, test_size=args.test_size,
        source_dir=Path(args.source_dir) if args.source_dir else None, entry_point=args.entry_point,
        instance_type=args.instance_type,
    )
    if args.sentence:
        options.sentence = args.sentence
    reporter = StreamReporter(show_logs=not args.quiet)
    with stdout_to_stderr() if args.json else contextlib.nullcontext():
        result = run_workflow(options, reporter)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    metrics = result["training"]["metrics"]
    shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                      if k in ("accuracy", "f1", "precision", "recall"))
    print()
    print(f"backend     {result['backend']} ({result['backend_reason']})")
    print(f"training    {result['training']['job_name']}: {shown or 'no metrics written'}")
    print(f"model_data  {result['training']['model_data']}")
    print(f"input       {result['input']}")
    print(f"prediction  {json.dumps(result['prediction'])}")
    print(f"endpoint    {result['endpoint']['name']} deleted")
    t = result["timings"]
    print("timings     " + ", ".join(f"{k[:-2]} {v:.1f}s" for k, v in t.items()))
    return 0


def _cmd_backends(args: argparse.Namespace) -> int:
    from sagetwin.core.plugins import backend_entries

    rows = []
    for entry in backend_entries().values():
        availability = entry.availability()
        rows.append({
            "name": entry.name, "plugin": entry.plugin, "distribution": entry.distribution,
            "usable": availability.usable, "reason": availability.reason, "fix": availability.fix,
            "description": getattr(entry.cls, "description", ""),
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max([len(r["name"]) for r in rows] + [4])
    for r in rows:
        state = "usable" if r["usable"] else "unusable"
        print(f"{r['name']:<{width}}  {state:<8}  {r['distribution']}  ({r['plugin']})")
        print(f"{'':<{width}}  {r['description']}")
        if r["reason"]:
            print(f"{'':<{width}}  {r['name']}: {r['reason']}" + (f" — fix: {r['fix']}" if r["fix"] else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sagetwin",
        description="Hugging Face fine-tune → deploy → predict, offline or on SageMaker, one flag apart.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="prepare data, fit, deploy, predict the guide's sentence, delete")
    run.add_argument("--backend", default=None,
                     help="backend name (default: $SAGETWIN_BACKEND, else auto: local if Docker answers, "
                          "else process)")
    run.add_argument("--model", default="minilm",
                     help="tiny | minilm (default: all-MiniLM-L6-v2, offline) | PATH | HUB_ID")
    run.add_argument("--dataset", default="sample", help="sample (default) | imdb | PATH (csv/json/parquet/saved)")
    run.add_argument("--epochs", type=float, default=2)
    run.add_argument("--learning-rate", type=float, default=1e-4)
    run.add_argument("--max-steps", type=int, default=-1, help="stop after N steps (default: full epochs)")
    run.add_argument("--train-batch-size", type=int, default=32)
    run.add_argument("--train-size", type=int, default=2000, help="examples of the sample dataset to train on")
    run.add_argument("--test-size", type=int, default=500)
    run.add_argument("--source-dir", default=None, help="folder with your training script (default: bundled)")
    run.add_argument("--entry-point", default="train.py")
    run.add_argument("--instance-type", default=None)
    run.add_argument("--sentence", default=None, help="text to predict (default: the guide's example)")
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout; progress on stderr")
    run.add_argument("--quiet", action="store_true", help="hide the training and server log lines")
    run.add_argument("--yes", action="store_true", help="do not ask before launching paid resources")
    run.set_defaults(func=_cmd_run)

    backends = sub.add_parser("backends", help="list installed backends and whether they are usable here")
    backends.add_argument("--json", action="store_true")
    backends.set_defaults(func=_cmd_backends)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SagetwinError as exc:
        print(f"sagetwin: error: {exc.render()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sagetwin: interrupted; everything this run started has been stopped.", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("SAGETWIN_DEBUG"):
            traceback.print_exc()
        print(f"sagetwin: unexpected error: {type(exc).__name__}: {exc} "
              "(set SAGETWIN_DEBUG=1 to see the traceback, and please report it).", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
