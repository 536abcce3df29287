"""Who the twin serves. A training job runs code, so only a caller holding one of the twin's
secrets, on its own address, and never a web page, may reach anything behind this guard.

The guard answers in two stages: on the request's headers, before any of its body is read (an
unsigned upload is refused without storing a byte of it), and on the whole request, where the
signature covers the body's hash. Refusals are worded and shaped as the service behind the
request words them (S3's XML, the query protocol's XML, the JSON protocols' ``__type``).
"""

from __future__ import annotations

import calendar
import hashlib
import threading
from collections.abc import Callable, Mapping
from typing import IO
from urllib.parse import unquote

from sagetwin.aws.refusals import INVOKE_PATH, Refusal, invoke_too_large, protocol_of, refusal
from sagetwin.aws.signatures import (
    EMPTY_SHA256,
    HEX_SHA256,
    Claim,
    Request,
    Secret,
    SignatureError,
    check,
    claim,
    remove_dot_segments,
)
from sagetwin.core.limits import MAX_PAYLOAD_BYTES

S3_MAX_PUT_BYTES = 5 * 1024**3  # S3's single PUT
S3_FRAMING_ALLOWANCE = 64 * 1024**2  # aws-chunked framing around a 5 GiB body
API_MAX_BODY_BYTES = 8 * 1024**2  # control-plane calls, logs (PutLogEvents ≤ 1 MiB), STS, IAM
def headers_of_environ(environ: Mapping[str, object]) -> dict[str, str]:
    """A WSGI environ's request headers, with their lower-case names."""
    headers = {name[5:].lower().replace("_", "-"): str(value) for name, value in environ.items()
               if name.startswith("HTTP_")}
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.lower().replace("_", "-")] = str(environ[name])
    return headers


class Guard:
    """The twin's policy: its address, its keys, what a request may carry.

    ``keys`` are the twin's own; ``more_keys`` looks up credentials created through the twin
    (an assumed role, an IAM user's access key), as AWS honours those too.
    """

    def __init__(self, port: int, keys: Mapping[str, Secret] | None = None,
                 more_keys: Callable[[str], Secret | None] = lambda key_id: None) -> None:
        self.port = port
        self._keys: dict[str, Secret] = dict(keys or {})
        self._more_keys = more_keys
        self._lock = threading.Lock()

    def allow(self, key_id: str, secret: Secret) -> None:
        with self._lock:
            self._keys[key_id] = secret

    def secret_of(self, key_id: str) -> Secret | None:
        with self._lock:
            known = self._keys.get(key_id)
        if known is not None:
            return known
        try:
            return self._more_keys(key_id)
        except Exception:  # noqa: BLE001 - a lookup that cannot answer refuses, never lets through
            return None

    def on_headers(self, method: str, raw_uri: str, headers: Mapping[str, str], content_length: int | None,
                   on_verified: Callable[[], None] = lambda: None,
                   on_pending: Callable[[], None] = lambda: None) -> Refusal | None:
        """The check made before any of the body is read: address, web pages, moto's own
        controls, the signature as far as the headers carry it, and the declared body size.
        ``on_verified`` is called when the headers alone proved the caller holds a secret,
        ``on_pending`` when they name a known key and the body's hash will decide."""
        path = raw_uri.partition("?")[0]
        try:
            return self._on_headers(method, raw_uri, headers, content_length, on_verified, on_pending)
        except Exception as exc:  # noqa: BLE001 - a check that cannot decide refuses, never lets through
            return refusal(protocol_of(None, headers, path), "refused", f"the request could not be checked ({exc})")

    def _on_headers(self, method: str, raw_uri: str, headers: Mapping[str, str], content_length: int | None,
                    on_verified: Callable[[], None], on_pending: Callable[[], None]) -> Refusal | None:
        path, _, query = raw_uri.partition("?")
        request = Request(method, path, query, headers)
        try:
            found = claim(request)
        except SignatureError as exc:
            return refusal(protocol_of(None, headers, path), exc.kind, exc.detail)
        protocol = protocol_of(found, headers, path)
        if headers.get("origin") is not None:
            return refusal(protocol, "refused", "requests from web pages are refused")
        host = headers.get("host", "")
        if host not in (f"127.0.0.1:{self.port}", f"localhost:{self.port}"):
            return refusal(protocol, "refused", f"requests for host {host!r} are refused")
        if _normal_path(path).startswith("/moto-api"):
            return refusal(protocol, "refused", "moto's own controls are not part of AWS")
        if found is not None and found.service != "s3" and path != _normal_path(path):
            return refusal(protocol, "refused", "the path is not in its normal form")
        if "x-amz-target" in headers and (found is None or found.form != "v4-header"
                                          or "x-amz-target" not in found.signed_headers):
            return refusal(protocol, "refused", "X-Amz-Target must be signed, in the Authorization header")
        verified = False
        try:
            if found is None or not found.payload_in_body or "x-amz-content-sha256" in headers:
                check(request, self.secret_of)
                verified = found.form != "v4-query" or found.service == "s3"  # presigned API calls: the body decides
            elif self.secret_of(found.key_id) is None:  # the rest is checked with the body's hash
                raise SignatureError("unknown-key")
        except SignatureError as exc:
            return refusal(protocol, exc.kind, exc.detail)
        size = content_length or 0
        if INVOKE_PATH.match(path) and size > MAX_PAYLOAD_BYTES:
            return invoke_too_large(size)
        limit = S3_MAX_PUT_BYTES + S3_FRAMING_ALLOWANCE if protocol == "s3" else API_MAX_BODY_BYTES
        decoded = headers.get("x-amz-decoded-content-length", "")
        if size > limit or (decoded.isascii() and decoded.isdigit() and int(decoded) > S3_MAX_PUT_BYTES):
            return refusal(protocol, "too-large", f"at most {limit} bytes")
        (on_verified if verified else on_pending)()
        return None

    def unsigned(self, raw_uri: str, headers: Mapping[str, str]) -> Refusal:
        return refusal(protocol_of(None, headers, raw_uri.partition("?")[0]), "unsigned")

    def body_limit(self, raw_uri: str, headers: Mapping[str, str]) -> int:
        """How many body bytes the request may send (for a chunked body, counted as it comes)."""
        path = raw_uri.partition("?")[0]
        if INVOKE_PATH.match(path):
            return MAX_PAYLOAD_BYTES
        try:
            found = claim(Request("", path, raw_uri.partition("?")[2], headers))
        except SignatureError:
            found = None
        return S3_MAX_PUT_BYTES + S3_FRAMING_ALLOWANCE if protocol_of(found, headers, path) == "s3" \
            else API_MAX_BODY_BYTES

    def on_request(self, method: str, raw_uri: str, headers: Mapping[str, str], body: IO[bytes]
                   ) -> tuple[Refusal | None, Claim | None]:
        """The whole request: everything ``on_headers`` checks, then the signature over the body's
        hash where it covers one; with the verified claim, which alone decides where the request
        goes. ``body`` is left at its start."""
        path = raw_uri.partition("?")[0]
        try:
            return self._on_request(method, raw_uri, headers, body)
        except Exception as exc:  # noqa: BLE001 - a check that cannot decide refuses, never lets through
            return refusal(protocol_of(None, headers, path), "refused",
                           f"the request could not be checked ({exc})"), None

    def _on_request(self, method: str, raw_uri: str, headers: Mapping[str, str], body: IO[bytes]
                    ) -> tuple[Refusal | None, Claim | None]:
        refused = self.on_headers(method, raw_uri, headers, None)
        if refused is not None:
            return refused, None
        path, _, query = raw_uri.partition("?")
        request = Request(method, path, query, headers)
        found = claim(request)
        if found is None:  # on_headers refuses unsigned requests
            return refusal(protocol_of(None, headers, path), "unsigned"), None
        protocol = protocol_of(found, headers, path)
        declared = headers.get("x-amz-content-sha256", "")
        presigned_api = found.form == "v4-query" and found.service != "s3"
        if not (found.payload_in_body or HEX_SHA256.match(declared) or presigned_api):
            return None, found
        digest = _sha256(body)
        if presigned_api:  # its signature covers an empty body: any other body is not what was signed
            return (None, found) if digest == EMPTY_SHA256 else (refusal(protocol, "body-hash"), None)
        if declared:
            return (None, found) if digest == declared else (refusal(protocol, "body-hash"), None)
        try:
            check(request, self.secret_of, body_sha256=digest)
        except SignatureError as exc:
            return refusal(protocol, exc.kind, exc.detail), None
        return None, found


def _normal_path(raw_path: str) -> str:
    """The path as a router sees it: decoded, dot segments resolved, repeated slashes collapsed."""
    return remove_dot_segments(unquote(raw_path))


def _sha256(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    start = stream.tell()
    for chunk in iter(lambda: stream.read(1024 * 1024), b""):
        digest.update(chunk)
    stream.seek(start)
    return digest.hexdigest()


def moto_credentials(key_id: str) -> Secret | None:
    """A key created through the twin: an assumed role's temporary credentials (with their
    session token) or an active IAM user access key, as moto recorded them."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for account in list(sts_backends.keys()):
        for backend in list(sts_backends[account].values()):
            for role in list(backend.assumed_roles):
                if role.access_key_id == key_id:
                    return Secret(role.secret_access_key, role.session_token,
                                  calendar.timegm(role.expiration.utctimetuple()))
    for account in list(iam_backends.keys()):
        for backend in list(iam_backends[account].values()):
            for user in list(backend.users.values()):
                for key in list(getattr(user, "access_keys", [])):
                    if key.access_key_id == key_id and key.status == "Active":
                        return Secret(key.secret_access_key)
    return None
