"""``sagetwin`` command line: the commands every install has (``run``, ``backends``, ``doctor``);
plugins add theirs through ``sagetwin_register_commands`` (the built-ins add ``check``,
``image build`` and ``endpoints`` that way)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path

from sagetwin.core import serve
from sagetwin.core.console import ask_before_launch, parse_options, print_checks, stdout_to_stderr
from sagetwin.core.errors import SagetwinError
from sagetwin.core.live import LiveReporter, reporter_for_terminal
from sagetwin.core.plugins import get_plugin_manager


def _cmd_doctor(args: argparse.Namespace) -> int:
    """Every installed plugin's view of whether it can run here, each problem with its fix."""
    from sagetwin.core.plugins import backend_entries

    items = [dataclasses.replace(entry.availability(), name=f"backend {entry.name}")
             for entry in backend_entries().values()]
    for found in get_plugin_manager().hook.sagetwin_doctor_checks():
        items.extend(found)
    print_checks(items, as_json=args.json)
    return 1 if any(i.ok is False for i in items if not i.name.startswith("backend ")) else 0


def _cmd_run(args: argparse.Namespace) -> int:
    from sagetwin.guide.workflow import WorkflowOptions, run_workflow

    options = WorkflowOptions(
        backend=args.backend, model=args.model, dataset=args.dataset, epochs=args.epochs,
        max_steps=args.max_steps, train_batch_size=args.train_batch_size, learning_rate=args.learning_rate,
        train_size=args.train_size, test_size=args.test_size,
        source_dir=Path(args.source_dir) if args.source_dir else None, entry_point=args.entry_point,
        instance_type=args.instance_type, endpoint_instance_type=args.endpoint_instance_type, role=args.role,
        backend_options=parse_options(args.option),
    )
    if args.sentence:
        options.sentence = args.sentence
    reporter = reporter_for_terminal(show_logs=not args.quiet, live=not (args.json or args.dry_run))
    if args.dry_run:
        from sagetwin.guide.workflow import dry_run

        with stdout_to_stderr():
            planned = dry_run(options, reporter)
        print(json.dumps(planned, indent=2, default=str))
        return 0
    try:
        with stdout_to_stderr() if args.json else contextlib.nullcontext():
            result = run_workflow(options, reporter, confirm=None if args.yes else ask_before_launch)
    finally:
        if isinstance(reporter, LiveReporter):
            reporter.finish()  # the terminal gets its cursor back, whatever ended the run
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
            "description": entry.cls.description,
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
    _add_run_command(sub)
    serve.register(sub)
    backends = sub.add_parser("backends", help="list installed backends and whether they are usable here")
    backends.add_argument("--json", action="store_true")
    backends.set_defaults(func=_cmd_backends)
    doctor = sub.add_parser("doctor", help="can each backend run here? Docker, compose, GPU, images, disk, AWS")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=_cmd_doctor)
    get_plugin_manager().hook.sagetwin_register_commands(subparsers=sub)
    return parser


def _add_run_command(sub: argparse._SubParsersAction) -> None:
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
    run.add_argument("--instance-type", default=None, help="training instance type (backend default if unset)")
    run.add_argument("--endpoint-instance-type", default=None, help="endpoint instance type")
    run.add_argument("--role", default=None, help="IAM role for SageMaker (default: $SAGETWIN_ROLE)")
    run.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                     help="backend option, e.g. -o bucket=my-bucket -o use_spot_instances=true")
    run.add_argument("--sentence", default=None, help="text to predict (default: the guide's example)")
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout; progress on stderr")
    run.add_argument("--quiet", action="store_true", help="hide the training and server log lines")
    run.add_argument("--yes", action="store_true", help="do not ask before launching paid resources")
    run.add_argument("--dry-run", action="store_true",
                     help="print the exact requests a paid backend would send (CreateTrainingJob, CreateModel, "
                          "CreateEndpointConfig, CreateEndpoint) and send none")
    run.set_defaults(func=_cmd_run)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI timeout, `kill`, a closing terminal) unwinds like Ctrl-C, through the same
    cleanup of servers, containers and endpoints, instead of leaving them running."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
        # Every command stops on Ctrl-C and cleans up what it started (`aws`, `exec`, `serve` and `run`
        # say so): take SIGINT back, since a background job of a non-interactive shell (`nohup sagetwin
        # aws &`, some CI runners) inherits it ignored and would otherwise never stop on Ctrl-C.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = build_parser().parse_args(argv)  # plugins add commands here: a broken one is reported below
        return int(args.func(args) or 0)
    except SagetwinError as exc:
        print(f"sagetwin: error: {exc.render()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"sagetwin: {how}; everything this run started has been stopped.", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except Exception as exc:
        if os.environ.get("SAGETWIN_DEBUG"):
            traceback.print_exc()
        print(f"sagetwin: unexpected error: {type(exc).__name__}: {exc} "
              "(set SAGETWIN_DEBUG=1 to see the traceback, and please report it).", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
