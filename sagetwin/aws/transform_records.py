"""How a batch transform job cuts its input into requests and puts the answers back together,
as the service does: ``SplitType`` (None / Line), ``BatchStrategy`` (SingleRecord / MultiRecord
up to ``MaxPayloadInMB``), ``AssembleWith`` (None / Line) and ``DataProcessing`` (InputFilter,
JoinSource, OutputFilter with the JSONPath forms the service documents). Pure functions: the
job (``transform_jobs``) does the I/O."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any

MB = 1024 * 1024
JSON_TYPES = ("application/json", "application/jsonlines", "application/x-jsonlines")
CSV_TYPES = ("text/csv",)
_INDEX = r"-?\d+|-?\d*:-?\d*"  # 0 | -1 | 1: | :3 | 1:3
_KEY = r"'[^',]+'|\"[^\",]+\""
# $ | $.a.b | $['a','b'] | $[0] | $[1:] | $[0,2] | $[0,5:] (the forms the service documents)
_BRACKET = rf"\[\s*(({_INDEX})(\s*,\s*({_INDEX}))*|({_KEY})(\s*,\s*({_KEY}))*)\s*\]"
_PATH = re.compile(rf"^\$(?P<rest>(\.[A-Za-z_][\w-]*)*({_BRACKET})?)$")


class RecordError(ValueError):
    """The job fails with this as its reason (the service's ClientError for its input)."""


def split_records(data: bytes, split_type: str) -> list[bytes]:
    """The records of one input object: the whole object, or its non-empty lines."""
    if split_type in ("None", "", None):
        return [data] if data else []
    if split_type == "Line":
        return [line for line in data.split(b"\n") if line.strip()]
    raise RecordError(f"SplitType {split_type} is not emulated offline (the twin splits by None or Line); use "
                      "SplitType=Line or None, or run this job on SageMaker itself.")


def batches(records: list[bytes], strategy: str, max_payload_mb: int) -> Iterator[list[bytes]]:
    """Requests of records: one record each, or as many as fit in ``max_payload_mb`` (0: no limit)."""
    limit = max_payload_mb * MB if max_payload_mb else None
    batch: list[bytes] = []
    size = 0
    for record in records:
        if limit is not None and len(record) > limit:
            raise RecordError(f"Too much data for max payload size: a record of {len(record)} bytes is over "
                              f"MaxPayloadInMB={max_payload_mb}. Raise MaxPayloadInMB or split the input into "
                              "smaller records.")
        if strategy == "SingleRecord":
            yield [record]
            continue
        joined = size + len(record) + (1 if batch else 0)
        if batch and limit is not None and joined > limit:
            yield batch
            batch, size = [], 0
            joined = len(record)
        batch.append(record)
        size = joined
    if batch and strategy != "SingleRecord":
        yield batch


def check_path(expression: str | None, field: str) -> str | None:
    """A JSONPath the twin applies, or the ValidationException text naming the one it does not."""
    if expression in (None, "", "$"):
        return None
    if not _PATH.match(expression):
        return (f"DataProcessing.{field} {expression!r} is not a JSONPath the twin applies offline ($, $.key.key, "
                "$['a','b'], $[0], $[1:], $[0,2]); use one of those, or run this job on SageMaker itself.")
    return None


def _select(value: Any, rest: str) -> Any:
    match = _PATH.match("$" + rest)
    assert match is not None
    for key in re.findall(r"\.([A-Za-z_][\w-]*)", rest.split("[", 1)[0]):
        value = value[key]
    bracket = re.search(r"\[([^\]]+)\]$", rest)
    if not bracket:
        return value
    inside = bracket.group(1).strip()
    if inside.startswith(("'", '"')):
        keys = [k.strip().strip("'\"") for k in inside.split(",")]
        return value[keys[0]] if len(keys) == 1 else {k: value[k] for k in keys if k in value}
    parts = [part.strip() for part in inside.split(",")]
    if len(parts) == 1 and ":" not in parts[0]:
        return value[int(parts[0])]
    chosen: list[Any] = []
    for part in parts:
        if ":" in part:
            start, _, stop = part.partition(":")
            chosen.extend(value[int(start) if start else None:int(stop) if stop else None])
        else:
            chosen.append(value[int(part)])
    return chosen


def apply_path(record: bytes, expression: str | None, content_type: str) -> bytes:
    """``expression`` applied to one JSON or CSV record."""
    if expression in (None, "", "$"):
        return record
    rest = expression[1:]
    try:
        if content_type.startswith(CSV_TYPES):  # each row is an array of its columns
            rows = []
            for row in csv.reader(record.decode().splitlines()):
                chosen = _select(row, rest)
                out = io.StringIO()
                csv.writer(out, lineterminator="").writerow(chosen if isinstance(chosen, list) else [chosen])
                rows.append(out.getvalue())
            return "\n".join(rows).encode()
        return json.dumps(_select(json.loads(record), rest)).encode()
    except (KeyError, IndexError, TypeError, ValueError, csv.Error) as exc:
        raise RecordError(f"ClientError: the filter {expression} could not be applied to the record "
                          f"{record[:200]!r}: {type(exc).__name__}: {exc}") from None


def join_input(record: bytes, answer: bytes, content_type: str) -> bytes:
    """``JoinSource=Input``: the answer joined to its input record, as the service joins them."""
    if content_type.startswith(CSV_TYPES):
        return record.rstrip(b"\r\n") + b"," + answer.strip()
    try:
        source = json.loads(record)
        output = json.loads(answer)
    except ValueError as exc:
        raise RecordError(f"ClientError: JoinSource=Input needs JSON input and output records: {exc}") from None
    if isinstance(source, dict):
        return json.dumps({**source, "SageMakerOutput": output}).encode()
    return json.dumps({"SageMakerInput": source, "SageMakerOutput": output}).encode()  # an array or a value


def assemble(parts: list[bytes], assemble_with: str) -> bytes:
    """One output object from the answers of its requests, in order."""
    if assemble_with == "Line":
        return b"".join(part.rstrip(b"\n") + b"\n" for part in parts)
    return b"".join(parts)


def filters_problem(processing: dict[str, Any], content_type: str, split_type: str) -> str | None:
    """What CreateTransformJob refuses in ``DataProcessing`` for this input."""
    for field in ("InputFilter", "OutputFilter"):
        problem = check_path(processing.get(field), field)
        if problem:
            return problem
    uses = any(processing.get(f) not in (None, "", "$") for f in ("InputFilter", "OutputFilter")) \
        or processing.get("JoinSource", "None") == "Input"
    if uses and not content_type.startswith(JSON_TYPES + CSV_TYPES):
        return (f"DataProcessing filters and JoinSource apply to JSON and CSV records; the input's ContentType is "
                f"{content_type or 'not set'}.")
    if processing.get("JoinSource", "None") == "Input" and split_type != "Line" and content_type.startswith(CSV_TYPES):
        return "JoinSource=Input with CSV input needs SplitType=Line."
    return None
