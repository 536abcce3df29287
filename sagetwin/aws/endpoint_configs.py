"""``CreateEndpointConfig`` checked as the service checks it before moto records it: serverless
variants' sizes, the asynchronous output config, and what cannot go together."""

from __future__ import annotations

import re
from typing import Any

from sagetwin.aws.replies import Reply, service_error
from sagetwin.aws.s3 import split_uri
from sagetwin.aws.serverless import serverless_config_problem
from sagetwin.aws.wsgi import Call

S3_URI = re.compile(r"^(https|s3)://([^/]+)/?(.*)$")


def endpoint_config_problem(params: dict[str, Any]) -> str | None:
    """What CreateEndpointConfig refuses in ``params``, or None."""
    variants = params.get("ProductionVariants") or []
    for index, variant in enumerate(variants, start=1):
        problem = serverless_config_problem(index, variant)
        if problem:
            return problem
        if variant.get("ServerlessConfig") is None and not variant.get("InstanceType"):
            return (f"Variant {variant.get('VariantName', index)} has neither an InstanceType nor a ServerlessConfig; "
                    "give one of them.")
    asynchronous = params.get("AsyncInferenceConfig")
    if asynchronous is not None:
        if any(v.get("ServerlessConfig") for v in variants):
            return ("Serverless endpoints do not support asynchronous inference: AsyncInferenceConfig was given "
                    "with a ServerlessConfig variant.")
        output = asynchronous.get("OutputConfig") or {}
        for key in ("S3OutputPath", "S3FailurePath"):
            if output.get(key) and not S3_URI.match(output[key]):
                return (f"1 validation error detected: Value '{output[key]}' at 'asyncInferenceConfig.outputConfig."
                        f"{key[0].lower() + key[1:]}' failed to satisfy constraint: Member must satisfy regular "
                        f"expression pattern: {S3_URI.pattern}")
            try:
                output.get(key) and split_uri(output[key])
            except ValueError:  # answers written nowhere would be results lost: refused here instead
                return (f"AsyncInferenceConfig.OutputConfig.{key} {output[key]!r} names no S3 bucket: write it as "
                        "s3://bucket/prefix (or an https:// address of S3).")
        if not output.get("S3OutputPath"):
            return "AsyncInferenceConfig.OutputConfig.S3OutputPath is required: where the endpoint writes its answers."
    return None


def create_endpoint_config(call: Call) -> Reply:
    problem = endpoint_config_problem(call.params())
    if problem:
        return service_error("ValidationException", problem)
    return call.pass_to_moto()
