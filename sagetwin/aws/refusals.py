"""How the twin says no: each refusal as the service behind the request words and shapes it
(S3's XML, the query protocol's XML, the JSON protocols' ``__type``), so a client raises what it
raises against AWS."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from sagetwin.aws.signatures import Claim
from sagetwin.core.limits import MAX_PAYLOAD_BYTES

INVOKE_PATH = re.compile(r"^/endpoints/[^/]+/invocations")
QUERY_SERVICES = {"sts", "iam"}
MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your key and "
            "signing method.")
INVALID_TOKEN = "The security token included in the request is invalid."
# (protocol, kind) → (status, code, message); "" → the same row for every protocol
REFUSALS: dict[tuple[str, str], tuple[int, str, str]] = {
    ("s3", "unsigned"): (403, "AccessDenied", "Access Denied"),
    ("s3", "unknown-key"): (403, "InvalidAccessKeyId",
                            "The AWS Access Key Id you provided does not exist in our records."),
    ("s3", "incomplete"): (400, "AuthorizationHeaderMalformed", "The authorization header is malformed"),
    ("s3", "incomplete-query"): (400, "AuthorizationQueryParametersError",
                                 "Query-string authentication requires more parameters"),
    ("s3", "mismatch"): (403, "SignatureDoesNotMatch", MISMATCH),
    ("s3", "token"): (400, "InvalidToken", "The provided token is malformed or otherwise invalid."),
    ("s3", "expired"): (403, "AccessDenied", "Request has expired"),
    ("s3", "skew"): (403, "RequestTimeTooSkewed",
                     "The difference between the request time and the current time is too large."),
    ("s3", "body-hash"): (400, "XAmzContentSHA256Mismatch",
                          "The provided 'x-amz-content-sha256' header does not match what was computed."),
    ("s3", "too-large"): (400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"),
    ("s3", "expired-token"): (400, "ExpiredToken", "The provided token has expired."),
    ("s3", "refused"): (403, "AccessDenied", "Access Denied"),
    ("json", "unsigned"): (403, "MissingAuthenticationTokenException", "Missing Authentication Token"),
    ("json", "unknown-key"): (403, "UnrecognizedClientException", INVALID_TOKEN),
    ("json", "token"): (403, "UnrecognizedClientException", INVALID_TOKEN),
    ("json", "incomplete"): (403, "IncompleteSignatureException", "The request signature is incomplete."),
    ("json", "mismatch"): (403, "InvalidSignatureException", MISMATCH),
    ("json", "expired"): (403, "InvalidSignatureException", "Signature expired."),
    ("json", "skew"): (403, "InvalidSignatureException", "Signature expired."),
    ("json", "too-large"): (413, "RequestEntityTooLargeException", "Request body too large."),
    ("json", "expired-token"): (403, "ExpiredTokenException", "The security token included in the request is expired"),
    ("json", "body-hash"): (403, "InvalidSignatureException", MISMATCH),
    ("json", "refused"): (403, "AccessDeniedException", "Access denied."),
    ("query", "unsigned"): (403, "MissingAuthenticationToken", "Request is missing Authentication Token"),
    ("query", "unknown-key"): (403, "InvalidClientTokenId", INVALID_TOKEN),
    ("query", "token"): (403, "InvalidClientTokenId", INVALID_TOKEN),
    ("query", "incomplete"): (403, "IncompleteSignature", "The request signature is incomplete."),
    ("query", "mismatch"): (403, "SignatureDoesNotMatch", MISMATCH),
    ("query", "expired"): (403, "SignatureDoesNotMatch", "Signature expired."),
    ("query", "skew"): (403, "SignatureDoesNotMatch", "Signature expired."),
    ("query", "too-large"): (413, "RequestEntityTooLarge", "Request body too large."),
    ("query", "expired-token"): (403, "ExpiredToken", "The security token included in the request is expired"),
    ("query", "body-hash"): (403, "SignatureDoesNotMatch", MISMATCH),
    ("query", "refused"): (403, "AccessDenied", "Access denied."),
}
REASONS = {400: "Bad Request", 403: "Forbidden", 413: "Request Entity Too Large"}


@dataclass
class Refusal:
    """An answer given instead of serving the request."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status_line(self) -> str:
        return f"{self.status} {REASONS.get(self.status, 'Error')}"


def refusal(protocol: str, kind: str, detail: str = "") -> Refusal:
    """The service's own error for ``kind`` (see ``REFUSALS``), ``detail`` added to its message."""
    status, code, message = REFUSALS.get((protocol, kind)) or REFUSALS[(protocol, kind.split("-")[0])]
    if detail and detail != kind:
        message = f"{message} ({detail})" if message != detail else message
    request_id = secrets.token_hex(8).upper()
    if protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        return Refusal(status, body, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code,
                                      "x-amzn-RequestId": request_id})
    if protocol == "query":
        xml = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
               f"<Code>{code}</Code><Message>{escape(message)}</Message></Error>"
               f"<RequestId>{request_id}</RequestId></ErrorResponse>")
    else:
        xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{escape(message)}'
               f"</Message><RequestId>{request_id}</RequestId></Error>")
    return Refusal(status, xml.encode(), {"Content-Type": "application/xml", "x-amz-request-id": request_id})


def invoke_too_large(size: int, limit: int = MAX_PAYLOAD_BYTES) -> Refusal:
    """SageMaker Runtime's own answer to an InvokeEndpoint body over its limit (6 MB, 4 MB on a
    serverless endpoint): a bare 413, which botocore reports as ``An error occurred (413) ...
    HTTP content length exceeded``."""
    message = f"HTTP content length exceeded {limit} bytes."
    return Refusal(413, json.dumps({"message": message}).encode(), {"Content-Type": "application/json"})


def protocol_of(found: Claim | None, headers: Mapping[str, str], path: str) -> str:
    """Which wire protocol the request speaks, so a refusal is one its client can read."""
    if found is not None and found.service:
        return "s3" if found.service == "s3" else "query" if found.service in QUERY_SERVICES else "json"
    if headers.get("x-amz-target") or INVOKE_PATH.match(path) or "json" in headers.get("content-type", ""):
        return "json"
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return "query"
    return "s3"
