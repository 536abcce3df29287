"""Which host of a job wrote a log line: ``algo-2 | text``, the form backends that run several
hosts give their lines (a line with no host is algo-1's, as on a one-host job). The AWS twin
sends each host's lines to its own CloudWatch stream (``<job>/algo-N-<time>``), as SageMaker does."""

from __future__ import annotations

import re

FIRST_HOST = "algo-1"
_TAGGED = re.compile(r"^(algo-\d+) \| ?(.*)$", re.DOTALL)


def tagged(host: str, text: str) -> str:
    return f"{host} | {text}"


def host_and_text(line: str) -> tuple[str, str]:
    """(host, the line as that host wrote it)."""
    match = _TAGGED.match(line)
    return (match[1], match[2]) if match else (FIRST_HOST, line)
