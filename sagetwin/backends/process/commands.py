"""``sagetwin check``, added to the CLI by the process plugin."""

from __future__ import annotations

import argparse
import json

from sagetwin.core.console import print_checks, stdout_to_stderr
from sagetwin.core.errors import ConfigurationError
from sagetwin.core.progress import StreamReporter


def register(subparsers: argparse._SubParsersAction) -> None:
    check = subparsers.add_parser("check", help="run your training script briefly and list what would break on "
                                                "SageMaker")
    check.add_argument("entry_point")
    check.add_argument("--source-dir", default=".", help="folder holding the script (default: .)")
    check.add_argument("--hyperparameters", default=None, help="JSON object merged over the check's defaults")
    check.add_argument("--channel", action="append", metavar="NAME=PATH", help="an extra input channel")
    check.add_argument("--transformers", default=None, help="the job's transformers_version (SDK aliases work)")
    check.add_argument("--pytorch", default=None, help="the job's pytorch_version")
    check.add_argument("--py", default=None, help="the job's py_version, e.g. py39")
    check.add_argument("--env", choices=["host", "stack"], default="host",
                       help="run in this Python's packages (host) or in the stack's cached environment (stack)")
    check.add_argument("--verbose", action="store_true", help="show the script's output")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=run_check_command)


def _channels(pairs: list[str] | None) -> dict[str, str]:
    channels = {}
    for pair in pairs or []:
        name, sep, path = pair.partition("=")
        if not sep:
            raise ConfigurationError(f"--channel {pair!r} is not NAME=PATH.", "write e.g. --channel extra=./data.")
        channels[name] = path
    return channels


def run_check_command(args: argparse.Namespace) -> int:
    from sagetwin.backends.process.check import run_check
    from sagetwin.core.versions import resolve_stack

    try:
        hyperparameters = json.loads(args.hyperparameters) if args.hyperparameters else {}
    except ValueError as exc:
        raise ConfigurationError(f"--hyperparameters is not valid JSON ({exc}).",
                                 """write e.g. --hyperparameters '{"epochs": 1}'.""") from None
    with stdout_to_stderr():
        items = run_check(args.entry_point, args.source_dir, hyperparameters=hyperparameters,
                          channels=_channels(args.channel), reporter=StreamReporter(show_logs=args.verbose),
                          stack=resolve_stack(args.transformers, args.pytorch, args.py), env=args.env)
    print_checks(items, as_json=args.json)
    passed = sum(1 for i in items if i.ok is True)
    failed = sum(1 for i in items if i.ok is False)
    if not args.json:
        unjudged = len(items) - passed - failed
        print(f"\n{passed} of {len(items)} checks passed, {failed} failed"
              + (f", {unjudged} could not be judged" if unjudged else "") if failed else
              f"\nall {passed} judged checks passed: the script follows the SageMaker contract"
              + (f" ({len(items) - passed} could not be judged)" if passed < len(items) else ""))
    return 1 if failed else 0
