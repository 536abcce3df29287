"""What every signature check shares: the request as signed, the key's secret, the error that
refuses, and the date and query forms both signature versions read."""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

MAX_SKEW_S = 15 * 60  # AWS refuses a request signed more than 15 minutes from its own clock
V2_HEADER = re.compile(r"^AWS (?P<key>[^:\s]+):(?P<signature>\S+)$")


@dataclass(frozen=True)
class Secret:
    """What the twin knows of a key: its secret and, for temporary credentials, the session token
    that must come with it."""

    secret_key: str
    session_token: str | None = None
    expires_at: float | None = None  # temporary credentials stop working then (ExpiredToken)


@dataclass(frozen=True)
class Request:
    """The parts of an HTTP request a signature covers. ``headers`` have lower-case names;
    ``raw_path`` and ``query`` are as sent, undecoded."""

    method: str
    raw_path: str
    query: str
    headers: Mapping[str, str]


class SignatureError(Exception):
    """Why a request is refused; ``kind`` picks the service's error code for it."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(detail or kind)
        self.kind, self.detail = kind, detail


def query_pairs(query: str) -> list[tuple[str, str]]:
    """The query's name/value pairs, decoded (``+`` stays a plus, as in SigV4)."""
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def amz_time(stamp: str) -> float:
    try:
        return calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise SignatureError("incomplete", f"X-Amz-Date {stamp!r} is not in ISO 8601 basic format") from None


def http_date_as_amz(value: str) -> str:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(value).strftime("%Y%m%dT%H%M%SZ") if value else ""
    except (TypeError, ValueError):
        return ""
