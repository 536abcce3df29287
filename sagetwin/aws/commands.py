"""``sagetwin aws`` (a twin in the foreground) and ``sagetwin exec -- COMMAND`` (a twin for one
command), added to the CLI by the twin's plugin."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading

from sagetwin.core.console import parse_options
from sagetwin.core.errors import ConfigurationError


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="process",
                        help="the backend that runs jobs and endpoints: process (default), local, or a plugin's")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                        help="backend option, e.g. -o env=stack")
    parser.add_argument("--no-persist", action="store_true",
                        help="start with an empty S3 and do not keep it on disk afterwards")
    parser.add_argument("--interrupt-spot", metavar="WHEN",
                        help="rehearse a spot interruption: each managed spot job is interrupted once, WHEN = 30s "
                             "(seconds of training), 40lines (lines of its log) or /REGEX/ (the first log line "
                             "matching), then restarts from its checkpoints as on SageMaker")


def register(subparsers: argparse._SubParsersAction) -> None:
    aws = subparsers.add_parser("aws", help="serve the SageMaker, S3 and CloudWatch APIs on 127.0.0.1, jobs and "
                                            "endpoints run by an offline backend")
    _common(aws)
    aws.set_defaults(func=run_aws)
    run = subparsers.add_parser("exec", help="run one command (e.g. python my_sdk_script.py) against a twin "
                                             "started for it")
    _common(run)
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    run.set_defaults(func=run_exec)


def _twin(args: argparse.Namespace):
    from sagetwin.aws import InProcessTwin  # jobs and servers it starts inherit the twin's environment

    return InProcessTwin(args.backend, port=args.port, region=args.region, persist=not args.no_persist,
                         backend_options=parse_options(args.option), interrupt_spot=args.interrupt_spot)


def run_aws(args: argparse.Namespace) -> int:
    twin = _twin(args)
    with twin:
        try:  # from the first line printed: a Ctrl-C as soon as the exports are read stops it cleanly
            print(f"# sagetwin: AWS twin on {twin.url} (backend: {args.backend}); Ctrl-C stops it.",
                  file=sys.stderr)
            print("# In another shell, run these, then your SageMaker SDK code unchanged:", file=sys.stderr)
            for name, value in twin.environment().items():
                print(f"export {name}={shlex.quote(value)}")
            sys.stdout.flush()
            threading.Event().wait()
        except KeyboardInterrupt:
            print("sagetwin: stopping the twin: endpoints deleted, jobs stopped, S3 kept.", file=sys.stderr)
    return 0


def run_exec(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise ConfigurationError("sagetwin exec needs a command to run.",
                                 "write it after --, e.g. sagetwin exec -- python train_and_deploy.py")
    with _twin(args) as twin:
        env = dict(os.environ)  # the twin's environment, set by InProcessTwin
        print(f"sagetwin: AWS twin on {twin.url} (backend: {args.backend}) for: {shlex.join(command)}",
              file=sys.stderr)
        try:
            child = subprocess.Popen(command, env=env)
        except FileNotFoundError:
            raise ConfigurationError(f"command {command[0]!r} was not found.", "check its name and PATH.") from None
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the child; we clean up after it
        try:
            code = child.wait()
        finally:
            signal.signal(signal.SIGINT, previous)
            if child.poll() is None:  # sagetwin itself was terminated: the command goes first
                child.terminate()
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
        left = sum(1 for e in twin.endpoints.endpoints.values() if e.status in ("Creating", "InService"))
        if left:
            print(f"sagetwin: the command left {left} endpoint(s) running; deleting them.", file=sys.stderr)
    return code if code >= 0 else 128 - code  # killed by signal N: the shell's 128+N
