"""The twin's answers: one HTTP reply, and the JSON protocol's success and error shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

JSON_11 = "application/x-amz-json-1.1"


@dataclass
class Reply:
    """One HTTP answer, as a handler builds it or as moto gave it."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None  # a body sent piece by piece as it is made (then ``body`` is unused)

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def json_reply(payload: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(payload, default=str).encode(), {"Content-Type": JSON_11})


def service_error(code: str, message: str, status: int = 400) -> Reply:
    """The JSON-protocol error shape botocore turns into ``ClientError(code, message)``."""
    return Reply(status, json.dumps({"__type": code, "message": message}).encode(),
                 {"Content-Type": JSON_11, "x-amzn-ErrorType": code})
