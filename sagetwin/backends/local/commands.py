"""``sagetwin image build``, added to the CLI by the local plugin."""

from __future__ import annotations

import argparse
import time

from sagetwin.core.progress import StreamReporter


def register(subparsers: argparse._SubParsersAction) -> None:
    image = subparsers.add_parser("image", help="local images at parity with the Hugging Face DLCs")
    image_sub = image.add_subparsers(dest="image_command", required=True)
    build = image_sub.add_parser("build", help="build the training and inference images (no registry needed)")
    build.add_argument("--scope", choices=["training", "inference", "all"], default="all")
    build.add_argument("--transformers", default=None, help="transformers version from the SDK's DLC table")
    build.add_argument("--pytorch", dest="pytorch_dlc", default=None, help="the DLC's PyTorch version")
    build.add_argument("--py", default=None, help="the DLC's Python, e.g. py311")
    build.add_argument("--torch", default=None,
                       help="the DLC's torch (default), cpu for the slim CPU build, or a version")
    build.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    build.add_argument("--verbose", action="store_true", help="show the build output")
    build.set_defaults(func=build_images)


def build_images(args: argparse.Namespace) -> int:
    from sagetwin.backends.local import images
    from sagetwin.core.versions import resolve_stack

    reporter = StreamReporter(show_logs=args.verbose)
    scopes = ["training", "inference"] if args.scope == "all" else [args.scope]
    for scope in scopes:
        stack = resolve_stack(args.transformers, args.pytorch_dlc, args.py, scope=scope)
        rec = images.recipe(scope, stack, torch=args.torch)
        started = time.monotonic()
        tag = images.build(rec, reporter, force=args.force)
        print(f"{scope:<9} {tag}  ({time.monotonic() - started:.1f}s; parity: {rec.parity_line()})")
    return 0
