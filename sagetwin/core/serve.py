"""``sagetwin serve``: one model behind an endpoint until Ctrl-C, with its address and a
ready-to-paste request; the endpoint is deleted on the way out, whatever ends the wait."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import threading
from typing import TextIO

from sagetwin.core.backend import Plans, ServesHttp
from sagetwin.core.console import ask_before_launch, parse_options, stdout_to_stderr
from sagetwin.core.containers import EXAMPLES, TEI_IMAGE, TGI_IMAGE, server_of
from sagetwin.core.errors import ConfigurationError
from sagetwin.core.model import HuggingFaceModel
from sagetwin.core.predictor import Predictor
from sagetwin.core.progress import StreamReporter


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="serve a model.tar.gz or an HF_MODEL_ID until Ctrl-C, printing its "
                                                "URL and a curl line")
    serve.add_argument("model_data", nargs="?", help="model.tar.gz: a path, file:// or s3:// URI")
    serve.add_argument("--hf-model-id", help="serve this Hub id, or offline a folder written by save_pretrained()")
    serve.add_argument("--task", help="HF_TASK, e.g. text-classification (default: read from the model's config)")
    container = serve.add_mutually_exclusive_group()
    container.add_argument("--tgi", action="store_true", help="serve it as the LLM container does (Text Generation "
                                                              "Inference's contract)")
    container.add_argument("--tei", action="store_true", help="serve it as the embeddings container does (Text "
                                                              "Embeddings Inference's contract)")
    serve.add_argument("--env", action="append", metavar="KEY=VALUE", help="serving environment variable")
    serve.add_argument("--backend", default=None, help="backend name (default: $SAGETWIN_BACKEND, else auto)")
    serve.add_argument("--port", type=int, default=None, help="local port (default: a free one)")
    serve.add_argument("--instance-type", default=None, help="endpoint instance type (backend default if unset)")
    serve.add_argument("--transformers", default=None, help="transformers_version (SDK aliases work)")
    serve.add_argument("--pytorch", default=None, help="pytorch_version")
    serve.add_argument("--py", default=None, help="py_version, e.g. py39")
    serve.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="backend option")
    serve.add_argument("--yes", action="store_true", help="do not ask before launching paid resources")
    serve.set_defaults(func=run_serve)


def _environment(args: argparse.Namespace) -> dict[str, str]:
    """``--env KEY=VALUE`` as given (no JSON coercion: the container gets strings)."""
    env: dict[str, str] = {}
    for pair in args.env or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--env {pair!r} is not KEY=VALUE.",
                                     "write e.g. --env HF_TASK=text-classification.")
        env[key] = value
    if args.hf_model_id:
        env["HF_MODEL_ID"] = args.hf_model_id
    if args.task:
        env["HF_TASK"] = args.task
    return env


def run_serve(args: argparse.Namespace) -> int:
    reporter = StreamReporter()
    image = TGI_IMAGE if args.tgi else TEI_IMAGE if args.tei else None
    model = HuggingFaceModel(args.model_data, None, args.transformers, args.pytorch, args.py, env=_environment(args),
                             image_uri=image, backend=args.backend, reporter=reporter,
                             backend_options=parse_options(args.option))
    backend = model.backend
    if isinstance(backend, Plans) and not args.yes:
        plan = [line.render() for line in backend.launch_plan(None, args.instance_type)]
        if plan and not ask_before_launch(plan):
            print("sagetwin: nothing was launched.", file=sys.stderr)
            return 1
    with os.fdopen(os.dup(sys.stdout.fileno()), "w") as out, stdout_to_stderr():
        # stdout holds the address and the request only: a server's own log (local mode's compose
        # prints the container's) goes to stderr, so `sagetwin serve … | head -2` reads just those
        with model.deploy(1, args.instance_type, port=args.port) as predictor:
            try:  # from here on, Ctrl-C is the way to stop: even one pressed as the address appears
                _print_how_to_call(predictor, out, EXAMPLES[server_of(image)])
                print("[sagetwin] serving; press Ctrl-C to stop and delete the endpoint", file=sys.stderr, flush=True)
                threading.Event().wait()  # until Ctrl-C or SIGTERM (both raise KeyboardInterrupt here)
            except KeyboardInterrupt:
                print("[sagetwin] stopping", file=sys.stderr, flush=True)
    return 0  # leaving the block deleted the endpoint (a failed delete raises, naming what is left)


def _print_how_to_call(predictor: Predictor, out: TextIO, example: dict) -> None:
    """The address and a request that works as pasted: on stdout, so a script can read them."""
    body = shlex.quote(json.dumps(example))
    endpoint = predictor.endpoint
    if isinstance(endpoint, ServesHttp):
        print(f"url   {endpoint.url}/invocations", file=out)
        print(f"curl  curl -s {endpoint.url}/invocations -H 'Content-Type: application/json' -d {body}", file=out)
    else:
        print(f"endpoint  {predictor.endpoint_name}", file=out)
        print(f"aws   aws sagemaker-runtime invoke-endpoint --endpoint-name {predictor.endpoint_name} "
              f"--content-type application/json --cli-binary-format raw-in-base64-out --body {body} /dev/stdout",
              file=out)
    out.flush()
