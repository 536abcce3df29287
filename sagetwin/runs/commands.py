"""``sagetwin runs`` (list), ``runs show JOB`` and ``runs prune``, added to the CLI by the runs plugin."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sagetwin.core.console import confirm
from sagetwin.core.errors import ConfigurationError

DEFAULT_KEEP = 10


def register(subparsers: argparse._SubParsersAction) -> None:
    runs = subparsers.add_parser("runs", help="past training runs: list them, show one (its loss curve, --plot), "
                                              "prune old ones and their run folders")
    runs.add_argument("--json", action="store_true", help="print a JSON list on stdout")
    runs.set_defaults(func=list_command)
    sub = runs.add_subparsers(dest="runs_command", metavar="{list,show,prune}")
    # sub-commands' --json leave the value alone unless given: `runs --json list` and `runs list --json` agree
    listed = sub.add_parser("list", help="every run, newest first (the default)")
    listed.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print a JSON list on stdout")
    listed.set_defaults(func=list_command)
    show = sub.add_parser("show", help="one run: its record, final metrics and training curve")
    show.add_argument("job", metavar="JOB", help="the training job name (see `sagetwin runs`)")
    show.add_argument("--plot", metavar="FILE.png", default=None, help="write the training curve as a PNG image")
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the record as JSON")
    show.set_defaults(func=show_command)
    prune = sub.add_parser("prune", help=f"remove old runs' records and run folders (default: keep the "
                                         f"{DEFAULT_KEEP} newest)")
    prune.add_argument("--older-than", type=float, metavar="DAYS", default=None,
                       help="only runs started more than DAYS ago (alone: all of those)")
    prune.add_argument("--keep", type=int, metavar="N", default=None,
                       help=f"keep the N newest runs (default: {DEFAULT_KEEP}, or 0 with --older-than)")
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    prune.add_argument("--yes", action="store_true", help="do not ask before removing")
    prune.set_defaults(func=prune_command)


def _summary(run: dict) -> dict:
    """A run for the JSON list: the record without its (long) log, plus how many log records it has."""
    return {**{k: v for k, v in run.items() if k != "log_history"}, "log_records": len(run.get("log_history") or [])}


def list_command(args: argparse.Namespace) -> int:
    from sagetwin.runs.catalog import list_runs
    from sagetwin.runs.records import records_dir
    from sagetwin.runs.text import runs_table

    runs = list_runs()
    if args.json:
        print(json.dumps([_summary(run) for run in runs], indent=2, default=str))
    elif not runs:
        print(f"no training runs recorded yet (records are kept in {records_dir()})")
    else:
        print(runs_table(runs))
    return 0


def show_command(args: argparse.Namespace) -> int:
    from sagetwin.runs.catalog import find_run
    from sagetwin.runs.curve import plot_curve
    from sagetwin.runs.text import show_text

    run = find_run(args.job)
    if args.plot:
        plot_curve(run.get("log_history") or [], run["job_name"], Path(args.plot).expanduser())
    if args.json:
        print(json.dumps(run, indent=2, default=str))
    else:
        print(show_text(run))
        if args.plot:
            print(f"\nplot written to {args.plot}")
    return 0


def prune_command(args: argparse.Namespace) -> int:
    from sagetwin.runs import prune
    from sagetwin.runs.catalog import list_runs
    from sagetwin.runs.text import human_bytes

    if (args.keep is not None and args.keep < 0) or (args.older_than is not None and args.older_than < 0):
        raise ConfigurationError("--keep and --older-than take numbers of 0 or more.", "e.g. --keep 5 --older-than 30.")
    keep = args.keep if args.keep is not None else (0 if args.older_than is not None else DEFAULT_KEEP)
    runs = list_runs()
    chosen = prune.plan(runs, keep, args.older_than)
    for run, reason in chosen.busy:
        print(f"keeping {run['job_name']}: {reason}")
    if not chosen.remove:
        kept = ([f"the {keep} newest"] if keep else []) + (
            [f"those started in the last {args.older_than:g} days"] if args.older_than is not None else [])
        print(f"nothing to prune: {len(runs)} run(s), keeping {' and '.join(kept) or 'those still running'}")
        return 0
    total = chosen.bytes
    print(f"{'would remove' if args.dry_run else 'to remove'} {len(chosen.remove)} run(s), "
          f"{human_bytes(total)} ({total} bytes):")
    for run in chosen.remove:
        print(f"  {prune.describe(run)}")
    if args.dry_run:
        return 0
    if not args.yes and not confirm(f"Remove these {len(chosen.remove)} run(s)?",
                                    no_terminal_fix="rerun with --yes to remove them (--dry-run only lists them)."):
        print("nothing removed")
        return 1
    freed = 0
    for run in chosen.remove:
        done, line = prune.remove(run)
        freed += done
        print(line)
    print(f"freed {human_bytes(freed)} ({freed} bytes)")
    return 0
