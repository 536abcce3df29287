"""Describe answers in the shape AWS gives them: every field the service always returns, with
its empty value, and nothing the service's API model does not have. moto leaves some out (an
unset ``OutputDataConfig.KmsKeyId`` is ``""`` on AWS; SDK helpers such as ``Estimator.attach``
read it) and adds some AWS never sends; botocore's model is the checklist."""

from __future__ import annotations

from functools import cache
from typing import Any

from sagetwin.aws.replies import Reply, json_reply

# what AWS returns even when the request left it out
ALWAYS: dict[str, dict[str, Any]] = {
    "DescribeTrainingJob": {"EnableNetworkIsolation": False, "EnableInterContainerTrafficEncryption": False,
                            "EnableManagedSpotTraining": False, "OutputDataConfig": {"KmsKeyId": ""},
                            "AlgorithmSpecification": {"TrainingInputMode": "File"}},
    "DescribeModel": {"EnableNetworkIsolation": False},
    "DescribeEndpointConfig": {},
    "DescribeEndpoint": {},
    "DescribeTransformJob": {"DataProcessing": {"InputFilter": "$", "OutputFilter": "$", "JoinSource": "None"}},
}


@cache
def output_members(operation: str) -> dict[str, frozenset[str]]:
    """The answer's members, each with the members its own shape requires (none for a scalar)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    members = model.operation_model(operation).output_shape.members
    return {name: frozenset(getattr(shape, "required_members", ())) for name, shape in members.items()}


def _with_defaults(payload: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    merged = dict(payload)
    for key, value in defaults.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _with_defaults(merged[key], value)
        elif key not in merged or merged[key] is None:
            merged[key] = value
    return merged


def _returned(value: Any, required: frozenset[str]) -> bool:
    """Whether AWS could send ``value``: never a structure without the members its shape
    requires (moto answers an unset ``VpcConfig`` as ``{}``, which SDK v3's models refuse)."""
    return value is not None and not (isinstance(value, dict) and not required <= value.keys())


def as_aws_returns(operation: str, payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with the service's always-returned fields and without any it never returns."""
    members = output_members(operation)
    shaped = _with_defaults(payload, ALWAYS.get(operation, {}))
    return {key: value for key, value in shaped.items() if key in members and _returned(value, members[key])}


def shaped_reply(operation: str, reply: Reply) -> Reply:
    return json_reply(as_aws_returns(operation, reply.json())) if reply.ok else reply
