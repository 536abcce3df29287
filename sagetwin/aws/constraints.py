"""The constraints of the SageMaker API model (botocore's: ranges, lengths, patterns, enums)
checked as the service checks them, in its words, before a request is carried out or recorded.

botocore checks little of this on the client (a minimum, not a maximum), and moto less: without
it the twin would run a job with ``MaxConcurrentInvocationsPerInstance=10000000`` that AWS
refuses with a ``ValidationException``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

MAX_REPORTED = 10  # the service lists at most this many problems in one message


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:  # a Java-only construct: not checked here rather than checked wrongly
        return None


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _scalar_problems(shape: Any, value: Any) -> list[str]:
    meta, kind, found = shape.metadata, shape.type_name, []
    if kind in ("integer", "long", "float", "double") and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        if "max" in meta and value > meta["max"]:
            found.append(f"Member must have value less than or equal to {meta['max']}")
        if "min" in meta and value < meta["min"]:
            found.append(f"Member must have value greater than or equal to {meta['min']}")
    elif kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            found.append(f"Member must have length less than or equal to {meta['max']}")
        if "min" in meta and len(value) < meta["min"]:
            found.append(f"Member must have length greater than or equal to {meta['min']}")
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            found.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = _pattern(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and not pattern.fullmatch(value):
            found.append(f"Member must satisfy regular expression pattern: {meta['pattern']}")
    return found


def _problems(shape: Any, value: Any, path: str) -> list[str]:
    """Every constraint ``value`` breaks, as "Value '…' at 'path' failed to satisfy constraint: …"."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        found: list[str] = []
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                child = f"{path}.{name[0].lower()}{name[1:]}" if path else f"{name[0].lower()}{name[1:]}"
                found += _problems(member, value[name], child)
        return found
    if kind == "list" and isinstance(value, list):
        found = [f"Value '{value}' at '{path}' failed to satisfy constraint: {problem}"
                 for problem in _scalar_problems_of_length(shape, value)]
        for index, item in enumerate(value, start=1):
            found += _problems(shape.member, item, f"{path}.{index}.member")
        return found
    if kind == "map" and isinstance(value, dict):
        found = [f"Value '{value}' at '{path}' failed to satisfy constraint: {problem}"
                 for problem in _scalar_problems_of_length(shape, value)]
        for key, item in value.items():
            for problem in _scalar_problems(shape.key, key):
                found.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Map keys must satisfy "
                             f"constraint: [{problem}]")
            for problem in _scalar_problems(shape.value, item):
                found.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Map value must satisfy "
                             f"constraint: [{problem}]")
        return found
    return [f"Value '{_render(value)}' at '{path}' failed to satisfy constraint: {problem}"
            for problem in _scalar_problems(shape, value)]


def _scalar_problems_of_length(shape: Any, value: list[Any] | dict[str, Any]) -> list[str]:
    meta, found = shape.metadata, []
    if "max" in meta and len(value) > meta["max"]:
        found.append(f"Member must have length less than or equal to {meta['max']}")
    if "min" in meta and len(value) < meta["min"]:
        found.append(f"Member must have length greater than or equal to {meta['min']}")
    return found


@functools.lru_cache(maxsize=4)
def _service_model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def constraint_message(service: str, operation: str, params: dict[str, Any]) -> str | None:
    """The service's ValidationException message for ``params`` of ``operation``, or None."""
    try:
        shape = _service_model(service).operation_model(operation).input_shape
    except Exception:  # not in this botocore's model: nothing to check it against
        return None
    if shape is None:
        return None
    found = _problems(shape, params, "")
    if not found:
        return None
    count = len(found)
    return f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(found[:MAX_REPORTED])
