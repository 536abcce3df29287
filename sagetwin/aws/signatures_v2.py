"""S3's Signature Version 2, header and presigned: boto3 still presigns S3 URLs with it by
default, so the twin checks it as S3 does (``signatures`` holds Version 4 and the shared parts)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

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

# the S3 sub-resources a V2 signature covers (botocore's HmacV1Auth.QSAOfInterest)
V2_SUBRESOURCES = frozenset((
    "accelerate acl cors defaultObjectAcl location logging partNumber policy requestPayment torrent versioning "
    "versionId versions website uploads uploadId response-content-type response-content-language response-expires "
    "response-cache-control response-content-disposition response-content-encoding delete lifecycle tagging "
    "restore storageClass notification replication analytics metrics inventory select select-type object-lock"
).split())


def verify_v2(request: Request, secret: Secret, params: Mapping[str, str], now: float, *, presigned: bool) -> None:
    if presigned:
        expires = params.get("Expires", "")
        if not (expires.isascii() and expires.isdigit()):
            raise SignatureError("incomplete", "Expires must be a number of seconds since the epoch")
        if now > int(expires):
            raise SignatureError("expired", "Request has expired")
        when, signature = expires, params["Signature"]
    else:
        match = V2_HEADER.match(request.headers["authorization"])
        when, signature = request.headers.get("date", ""), match.group("signature")
        stamp = http_date_as_amz(request.headers.get("x-amz-date") or when)
        if not stamp:
            raise SignatureError("incomplete", "the request has no Date (or x-amz-date)")
        if abs(now - amz_time(stamp)) > MAX_SKEW_S:
            raise SignatureError("skew", "the request's date is more than 15 minutes from the time now")
        if request.headers.get("x-amz-date"):
            when = ""  # x-amz-date, signed among the x-amz- headers, stands for Date
    amz = {name: value for name, value in request.headers.items() if name.startswith("x-amz-")}
    if presigned:
        amz.update({name.lower(): value for name, value in params.items() if name.lower().startswith("x-amz-")})
    standard = [request.headers.get("content-md5", params.get("content-md5", "")),
                request.headers.get("content-type", params.get("content-type", ""))]
    resource = request.raw_path.split("?")[0]
    subresources = sorted((name, value) for name, value in query_pairs(request.query) if name in V2_SUBRESOURCES)
    if subresources:
        resource += "?" + "&".join(f"{name}={value}" if value else name for name, value in subresources)
    string_to_sign = "\n".join([request.method.upper(), *(v.strip() for v in standard), when,
                                *(f"{name}:{amz[name].strip()}" for name in sorted(amz)), resource])
    expected = base64.b64encode(hmac.new(secret.secret_key.encode(), string_to_sign.encode(), hashlib.sha1).digest())
    if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
        raise SignatureError("mismatch")
