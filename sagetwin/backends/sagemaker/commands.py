"""``sagetwin endpoints``, added to the CLI by the sagemaker plugin: the endpoints still up (and
billing) on every backend that keeps them beyond one process, and deleting them."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sagetwin.core.backend import ListsEndpoints
from sagetwin.core.console import confirm, parse_options
from sagetwin.core.errors import ConfigurationError


def register(subparsers: argparse._SubParsersAction) -> None:
    endpoints = subparsers.add_parser("endpoints", help="list endpoints sagetwin created that are still up (and bill)")
    endpoints.add_argument("--backend", default=None, help="only this backend (default: all that keep a list)")
    endpoints.add_argument("--delete", action="append", metavar="NAME", help="delete this endpoint")
    endpoints.add_argument("--delete-all", action="store_true", help="delete every endpoint listed")
    endpoints.add_argument("--yes", action="store_true", help="do not ask before deleting")
    endpoints.add_argument("-o", "--option", action="append", metavar="KEY=VALUE")
    endpoints.add_argument("--json", action="store_true")
    endpoints.set_defaults(func=list_endpoints)


def _backends(args: argparse.Namespace) -> list[tuple[str, ListsEndpoints]]:
    from sagetwin.core.plugins import backend_entries
    from sagetwin.core.selection import create_backend

    names = [args.backend] if args.backend else [
        e.name for e in backend_entries().values() if isinstance(e.cls, ListsEndpoints) and e.availability().usable]
    found = []
    for name in names:
        backend = create_backend(name, **parse_options(args.option))
        if not isinstance(backend, ListsEndpoints):
            raise ConfigurationError(f"backend {name!r} keeps no list of endpoints.",
                                     "its endpoints end with the process that created them.")
        found.append((name, backend))
    if not args.backend:
        from sagetwin.core.plugins import get_plugin_manager

        for pairs in get_plugin_manager().hook.sagetwin_endpoint_listers():
            found.extend(pairs)
    return found


def list_endpoints(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    for name, backend in _backends(args):
        for row in backend.list_endpoints():
            row = {"backend": name, **row}
            if args.delete_all or row["name"] in (args.delete or []):
                if args.yes or confirm(f"Delete endpoint {row['name']}?"):
                    backend.delete_endpoint(row["name"])
                    row["action"] = "deleted"
                else:
                    row["action"] = "kept"
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
