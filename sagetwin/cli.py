"""``sagetwin`` command line: run the guide's workflow, inspect backends."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

from sagetwin.core.errors import ConfigurationError, SagetwinError
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


def parse_options(pairs: list[str] | None) -> dict[str, object]:
    """``-o key=value`` pairs for the backend's constructor; values are JSON when they parse as JSON."""
    options: dict[str, object] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"backend option {pair!r} is not KEY=VALUE.", "write e.g. -o bucket=my-bucket.")
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except ValueError:
            options[key.replace("-", "_")] = value
    return options


def ask_before_launch(plan: list[str]) -> bool:
    """Paid resources are launched only after a person says yes (or passes --yes)."""
    if not sys.stdin.isatty():
        raise ConfigurationError(
            "this backend launches billed resources and there is no terminal to confirm: " + "; ".join(plan) + ".",
            "rerun with --yes once the plan above is what you want.",
        )
    print("This will launch billed resources:\n  " + "\n  ".join(plan), file=sys.stderr)
    answer = input("Continue? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _cmd_endpoints(args: argparse.Namespace) -> int:
    """List (and delete) endpoints that backends with an endpoint registry know about."""
    from sagetwin.core.job import create_backend
    from sagetwin.core.plugins import backend_entries

    names = [args.backend] if args.backend else [
        e.name for e in backend_entries().values() if hasattr(e.cls, "list_endpoints") and e.availability().usable]
    rows = []
    for name in names:
        backend = create_backend(name, **parse_options(args.option))
        if not hasattr(backend, "list_endpoints"):
            raise ConfigurationError(f"backend {name!r} keeps no list of endpoints.",
                                     "its endpoints end with the process that created them.")
        for row in backend.list_endpoints():
            row = {"backend": name, **row}
            if args.delete_all or row["name"] in (args.delete or []):
                if not args.yes and not _confirm_delete(row):
                    row["action"] = "kept"
                else:
                    backend.delete_endpoint(row["name"])
                    row["action"] = "deleted"
            rows.append(row)
    missing = set(args.delete or []) - {r["name"] for r in rows}
    if missing:
        raise ConfigurationError(f"no endpoint named {', '.join(sorted(missing))} was created by sagetwin.",
                                 "run `sagetwin endpoints` to see the ones that exist.")
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no endpoints created by sagetwin are running")
    for r in rows:
        cost = f"${r['hourly_usd']:.3f}/h" if r.get("hourly_usd") is not None else "price unknown"
        print(f"{r['backend']:<10} {r['name']:<50} {r['status']:<10} {r['age_hours']:>7.2f} h  {cost}  "
              f"{', '.join(r.get('instances', []))}" + (f"  [{r['action']}]" if "action" in r else ""))
    return 0


def _confirm_delete(row: dict) -> bool:
    if not sys.stdin.isatty():
        raise ConfigurationError(f"deleting endpoint {row['name']} needs confirmation and there is no terminal.",
                                 "rerun with --yes.")
    return input(f"Delete endpoint {row['name']}? [y/N] ").strip().lower() in ("y", "yes")


def _cmd_doctor(args: argparse.Namespace) -> int:
    """Every installed plugin's view of whether it can run here, each problem with its fix."""
    from sagetwin.core.check import CheckItem, as_json
    from sagetwin.core.plugins import backend_entries, get_plugin_manager

    items = []
    for entry in backend_entries().values():
        availability = entry.availability()
        items.append(CheckItem(f"backend {entry.name}", availability.usable, availability.reason, availability.fix))
    for found in get_plugin_manager().hook.sagetwin_doctor_checks():
        items.extend(found)
    if args.json:
        print(json.dumps(as_json(items), indent=2))
    else:
        for item in items:
            print(item.render())
    return 1 if any(i.ok is False for i in items if not i.name.startswith("backend ")) else 0


def _cmd_image_build(args: argparse.Namespace) -> int:
    from sagetwin.backends import images
    from sagetwin.core.versions import resolve_stack

    reporter = StreamReporter(show_logs=args.verbose)
    scopes = ["training", "inference"] if args.scope == "all" else [args.scope]
    for scope in scopes:
        stack = resolve_stack(args.transformers, args.pytorch_dlc, args.py, scope=scope)
        rec = images.recipe(scope, stack, torch=args.torch)
        started = time.monotonic()
        tag = images.build(rec, reporter, force=args.force)
        gaps = "; ".join(g.render() for g in rec.parity()) or "exact"
        print(f"{scope:<9} {tag}  ({time.monotonic() - started:.1f}s; parity: {gaps})")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from sagetwin.core.check import as_json, run_check

    try:
        hyperparameters = json.loads(args.hyperparameters) if args.hyperparameters else {}
    except ValueError as exc:
        raise ConfigurationError(f"--hyperparameters is not valid JSON ({exc}).",
                                 """write e.g. --hyperparameters '{"epochs": 1}'.""") from None
    channels = {}
    for pair in args.channel or []:
        name, sep, path = pair.partition("=")
        if not sep:
            raise ConfigurationError(f"--channel {pair!r} is not NAME=PATH.", "write e.g. --channel extra=./data.")
        channels[name] = path
    reporter = StreamReporter(show_logs=args.verbose)
    with stdout_to_stderr():
        items = run_check(args.entry_point, args.source_dir, hyperparameters=hyperparameters, channels=channels,
                          reporter=reporter)
    if args.json:
        print(json.dumps(as_json(items), indent=2))
    else:
        for item in items:
            print(item.render())
    failed = [i for i in items if i.ok is False]
    if not args.json:
        print(f"\n{len(items) - len(failed)} of {len(items)} checks passed" if failed else
              f"\nall {len(items)} checks passed: the script follows the SageMaker contract")
    return 1 if failed else 0


def _cmd_run(args: argparse.Namespace) -> int:
    from sagetwin.core.workflow import WorkflowOptions, run_workflow

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
    reporter = StreamReporter(show_logs=not args.quiet)
    if args.dry_run:
        from sagetwin.core.workflow import dry_run

        with stdout_to_stderr():
            planned = dry_run(options, reporter)
        print(json.dumps(planned, indent=2, default=str))
        return 0
    confirm = None if args.yes else ask_before_launch
    with stdout_to_stderr() if args.json else contextlib.nullcontext():
        result = run_workflow(options, reporter, confirm=confirm)
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

    backends = sub.add_parser("backends", help="list installed backends and whether they are usable here")
    backends.add_argument("--json", action="store_true")
    backends.set_defaults(func=_cmd_backends)
    check = sub.add_parser("check", help="run your training script briefly and list what would break on SageMaker")
    check.add_argument("entry_point")
    check.add_argument("--source-dir", default=".", help="folder holding the script (default: .)")
    check.add_argument("--hyperparameters", default=None, help="JSON object merged over the check's defaults")
    check.add_argument("--channel", action="append", metavar="NAME=PATH", help="an extra input channel")
    check.add_argument("--verbose", action="store_true", help="show the script's output")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=_cmd_check)

    doctor = sub.add_parser("doctor", help="can each backend run here? Docker, compose, GPU, images, disk, AWS")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=_cmd_doctor)

    image = sub.add_parser("image", help="local images at parity with the Hugging Face DLCs")
    image_sub = image.add_subparsers(dest="image_command", required=True)
    build = image_sub.add_parser("build", help="build the training and inference images (no registry needed)")
    build.add_argument("--scope", choices=["training", "inference", "all"], default="all")
    build.add_argument("--transformers", default=None, help="transformers version from the SDK's DLC table")
    build.add_argument("--pytorch", dest="pytorch_dlc", default=None, help="the DLC's PyTorch version")
    build.add_argument("--py", default=None, help="the DLC's Python, e.g. py311")
    build.add_argument("--torch", default=None, help="torch wheel to install locally (default: 2.13.0 CPU)")
    build.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    build.add_argument("--verbose", action="store_true", help="show the build output")
    build.set_defaults(func=_cmd_image_build)

    endpoints = sub.add_parser("endpoints", help="list endpoints sagetwin created that are still up (and bill)")
    endpoints.add_argument("--backend", default=None, help="only this backend (default: all that keep a list)")
    endpoints.add_argument("--delete", action="append", metavar="NAME", help="delete this endpoint")
    endpoints.add_argument("--delete-all", action="store_true", help="delete every endpoint listed")
    endpoints.add_argument("--yes", action="store_true", help="do not ask before deleting")
    endpoints.add_argument("-o", "--option", action="append", metavar="KEY=VALUE")
    endpoints.add_argument("--json", action="store_true")
    endpoints.set_defaults(func=_cmd_endpoints)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI timeout, `kill`, a closing terminal) unwinds like Ctrl-C, through the same
    cleanup of servers, containers and endpoints, instead of leaving them running."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
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
