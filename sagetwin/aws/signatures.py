"""AWS request signatures checked as AWS checks them: Signature Version 4 (``Authorization``
header and presigned query) and S3's Version 2 (header and presigned query, which botocore
still uses for ``generate_presigned_url`` on S3).

A key ID is not a secret (it is in logs and presigned URLs), so knowing one proves nothing: a
request is served only when its signature was computed with the key's secret. The canonical
forms follow botocore's signers, which the SDK, boto3, s3fs and the AWS CLI all use.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote

from sagetwin.aws.signatures_v2 import verify_v2
from sagetwin.aws.signed_requests import (
    MAX_SKEW_S,
    V2_HEADER,
    Request,
    Secret,
    SignatureError,
    amz_time,
    http_date_as_amz,
    query_pairs,
)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_PRESIGNED_EXPIRY_S = 7 * 24 * 3600
V4_HEADER = re.compile(r"^AWS4-HMAC-SHA256\s+(?P<fields>.*)$", re.S)


@dataclass(frozen=True)
class Claim:
    """A request's signature as it claims itself, before it is checked."""

    form: str  # "v4-header" | "v4-query" | "v2-header" | "v2-query"
    key_id: str
    service: str = ""  # from a V4 scope; "s3" for V2
    region: str = ""  # from a V4 scope
    signed_headers: tuple[str, ...] = ()  # a V4 header signature's SignedHeaders

    @property
    def payload_in_body(self) -> bool:
        """Whether checking this signature needs the body's hash (V4 without a declared hash)."""
        return self.form == "v4-header" and self.service != "s3"


def claim(request: Request) -> Claim | None:
    """The signature a request carries, or None for an unsigned (anonymous) request.
    Raises ``SignatureError("incomplete")`` for a signature that is there but malformed."""
    authorization = request.headers.get("authorization", "")
    params = dict(query_pairs(request.query))
    if authorization:
        if match := V4_HEADER.match(authorization):
            fields = _v4_fields(match.group("fields"))
            scope = fields.get("Credential", "").split("/")
            if len(scope) != 5 or scope[4] != "aws4_request" or not fields.get("SignedHeaders") \
                    or not fields.get("Signature"):
                raise SignatureError("incomplete", "Authorization header requires 'Credential', 'SignedHeaders' "
                                     "and 'Signature' parameters.")
            return Claim("v4-header", scope[0], scope[3], scope[2], tuple(fields["SignedHeaders"].split(";")))
        if match := V2_HEADER.match(authorization):
            return Claim("v2-header", match.group("key"), "s3")
        raise SignatureError("incomplete", "Authorization header is neither AWS4-HMAC-SHA256 nor AWS.")
    if "X-Amz-Credential" in params or "X-Amz-Signature" in params or "X-Amz-Algorithm" in params:
        scope = params.get("X-Amz-Credential", "").split("/")
        if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or len(scope) != 5 or not params.get(
                "X-Amz-Signature") or not params.get("X-Amz-SignedHeaders") or not params.get("X-Amz-Date"):
            raise SignatureError("incomplete-query", "Query-string authentication requires the X-Amz-Algorithm, "
                                 "X-Amz-Credential, X-Amz-Signature, X-Amz-Date and X-Amz-SignedHeaders parameters.")
        return Claim("v4-query", scope[0], scope[3], scope[2],
                     tuple(params["X-Amz-SignedHeaders"].split(";")))
    if "AWSAccessKeyId" in params or "Signature" in params:
        if not (params.get("AWSAccessKeyId") and params.get("Signature") and params.get("Expires")):
            raise SignatureError("incomplete-query", "Query-string authentication requires the Signature, Expires and "
                                 "AWSAccessKeyId parameters.")
        return Claim("v2-query", params["AWSAccessKeyId"], "s3")
    return None


def verify(request: Request, found: Claim, secret: Secret, *, body_sha256: str | None = None,
           now: float | None = None) -> None:
    """Raise ``SignatureError`` unless ``request`` is signed with ``secret`` (and carries its
    session token), in time. ``body_sha256`` is needed only where ``found.payload_in_body``."""
    now = time.time() if now is None else now
    params = dict(query_pairs(request.query))
    token = request.headers.get("x-amz-security-token") or params.get("X-Amz-Security-Token") \
        or params.get("x-amz-security-token")
    if (secret.session_token or None) != (token or None):
        raise SignatureError("token", "the session token does not belong to the access key")
    if secret.expires_at is not None and now > secret.expires_at:
        raise SignatureError("expired-token", "the temporary credentials have expired")
    if found.form == "v4-header":
        _verify_v4(request, secret, _v4_fields(V4_HEADER.match(request.headers["authorization"]).group("fields")),
                   body_sha256, now, presigned=False)
    elif found.form == "v4-query":
        fields = {"Credential": params["X-Amz-Credential"], "SignedHeaders": params["X-Amz-SignedHeaders"],
                  "Signature": params["X-Amz-Signature"]}
        _verify_v4(request, secret, fields, body_sha256, now, presigned=True)
    else:
        verify_v2(request, secret, params, now, presigned=found.form == "v2-query")


def _v4_fields(text: str) -> dict[str, str]:
    """Credential, SignedHeaders and Signature, each exactly once: a second ``Credential`` (which
    another parser might read instead of this one) makes the header malformed."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip() in fields:
            raise SignatureError("incomplete", f"Authorization header repeats {name.strip()!r}.")
        fields[name.strip()] = value.strip()
    return fields


def _verify_v4(request: Request, secret: Secret, fields: Mapping[str, str], body_sha256: str | None, now: float,
               *, presigned: bool) -> None:
    key_id, date, region, service, _ = fields["Credential"].split("/")
    params = query_pairs(request.query)
    stamp = dict(params).get("X-Amz-Date") if presigned else (
        request.headers.get("x-amz-date") or http_date_as_amz(request.headers.get("date", "")))
    if not stamp:
        raise SignatureError("incomplete", "the request has no X-Amz-Date (or Date)")
    signed_at = amz_time(stamp)
    if stamp[:8] != date:
        raise SignatureError("mismatch", "the credential scope's date is not the request's date")
    if presigned:
        expires = dict(params).get("X-Amz-Expires", "")
        if not (expires.isascii() and expires.isdigit()) or not 1 <= int(expires) <= MAX_PRESIGNED_EXPIRY_S:
            raise SignatureError("incomplete", "X-Amz-Expires must be a number of seconds up to 604800")
        if now > signed_at + int(expires):
            raise SignatureError("expired", "Request has expired")
        if signed_at > now + MAX_SKEW_S:
            raise SignatureError("skew", "the request is signed for a time in the future")
    elif abs(now - signed_at) > MAX_SKEW_S:
        raise SignatureError("skew", f"Signature expired: {stamp} is more than 15 minutes from the time now")
    names = fields["SignedHeaders"].split(";")
    if "host" not in names:
        raise SignatureError("incomplete", "the signed headers must include host")
    missing = [name for name in names if name not in request.headers]
    if missing:
        raise SignatureError("mismatch", f"signed headers not sent: {', '.join(missing)}")
    if presigned:
        payload = "UNSIGNED-PAYLOAD" if service == "s3" else EMPTY_SHA256
    elif "x-amz-content-sha256" in request.headers:
        payload = request.headers["x-amz-content-sha256"]
    elif body_sha256 is not None:
        payload = body_sha256
    else:
        raise SignatureError("incomplete", "the body's hash is needed to check this signature")
    canonical = "\n".join([
        request.method.upper(),
        _canonical_path(request.raw_path, service),
        _canonical_query(params, drop="X-Amz-Signature" if presigned else None),
        "".join(f"{name}:{' '.join(request.headers[name].split())}\n" for name in names),
        ";".join(names),
        payload,
    ])
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    expected = hmac.new(_signing_key(secret.secret_key, date, region, service), string_to_sign.encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), fields["Signature"].encode("utf-8", "replace")):
        raise SignatureError("mismatch")


@lru_cache(maxsize=64)
def _signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _canonical_path(raw_path: str, service: str) -> str:
    """S3 signs its path once encoded, as is; every other service the normalized path encoded
    again (botocore's ``S3SigV4Auth`` / ``SigV4Auth``)."""
    if service == "s3":
        return quote(unquote(raw_path), safe="/~") or "/"
    return quote(remove_dot_segments(raw_path), safe="/~")


def remove_dot_segments(path: str) -> str:
    if not path:
        return "/"
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    trailing = "/" if path.endswith("/") and kept else ""
    return ("/" if path.startswith("/") else "") + "/".join(kept) + trailing


def _canonical_query(pairs: list[tuple[str, str]], drop: str | None) -> str:
    encoded = sorted((quote(name, safe="-_.~"), quote(value, safe="-_.~")) for name, value in pairs if name != drop)
    return "&".join(f"{name}={value}" for name, value in encoded)


def check(request: Request, lookup: Callable[[str], Secret | None], *, body_sha256: str | None = None,
          now: float | None = None) -> Claim:
    """The request's claim, verified against the secret ``lookup`` gives for its key; raises
    ``SignatureError`` (``unsigned``, ``unknown-key``, ``incomplete[-query]``, ``mismatch``, ``token``,
    ``expired``, ``skew``)."""
    found = claim(request)
    if found is None:
        raise SignatureError("unsigned")
    secret = lookup(found.key_id)
    if secret is None:
        raise SignatureError("unknown-key")
    verify(request, found, secret, body_sha256=body_sha256, now=now)
    return found
