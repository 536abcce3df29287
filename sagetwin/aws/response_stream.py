"""``InvokeEndpointWithResponseStream`` as the runtime answers it: the container's answer to
``POST /invocations`` handed on as it arrives, each piece a ``PayloadPart`` event of the AWS event
stream (``application/vnd.amazon.eventstream``, the binary framing botocore's ``EventStream``
reads), so the SDK's and boto3's readers (and the usual "iterate the lines of the stream" helpers)
work unchanged. An error from the container before it answers is ``ModelError``, as for
``InvokeEndpoint``; after the stream started, the container timing out or going away is a
``ModelStreamError`` event (``ModelInvocationTimeExceeded`` / ``StreamBroken``), anything else an
``InternalStreamFailure``."""

from __future__ import annotations

import binascii
import http.client
import json
import struct
from collections.abc import Iterator

from sagetwin.aws.replies import Reply

EVENT_STREAM = "application/vnd.amazon.eventstream"
STRING_HEADER = 7  # the event stream's header value type for a string


def _headers(values: dict[str, str]) -> bytes:
    out = b""
    for name, value in values.items():
        encoded_name, encoded_value = name.encode(), value.encode()
        out += struct.pack("!B", len(encoded_name)) + encoded_name + struct.pack("!BH", STRING_HEADER,
                                                                                 len(encoded_value)) + encoded_value
    return out


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total and header lengths, their CRC32), headers,
    payload, and the CRC32 of all that."""
    encoded = _headers(headers)
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + encoded + payload
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


def payload_part(data: bytes) -> bytes:
    return event_message({":event-type": "PayloadPart", ":content-type": "application/octet-stream",
                          ":message-type": "event"}, data)


def model_stream_error(message: str, code: str = "StreamBroken") -> bytes:
    return _exception("ModelStreamError", {"Message": message, "ErrorCode": code})


def internal_stream_failure(message: str) -> bytes:
    return _exception("InternalStreamFailure", {"Message": message})


def _exception(kind: str, body: dict[str, str]) -> bytes:
    """An exception event of the stream: its type in the headers, its members as JSON."""
    return event_message({":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
                         json.dumps(body).encode())


def streamed_reply(pieces: Iterator[bytes], content_type: str) -> Reply:
    """The reply whose body is ``pieces`` as PayloadParts, sent as they come."""

    def events() -> Iterator[bytes]:
        try:
            for piece in pieces:
                if piece:
                    yield payload_part(piece)
        except TimeoutError:
            yield model_stream_error("Your model did not complete sending the inference response in the allotted "
                                     "time.", "ModelInvocationTimeExceeded")
        except (http.client.HTTPException, ConnectionError) as exc:  # the container went away mid-answer
            yield model_stream_error(f"The stream from your model was broken: {type(exc).__name__}: {exc}")
        except Exception as exc:
            yield internal_stream_failure(f"{type(exc).__name__}: {exc}")
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # the container's connection, now, also when the caller left mid-stream

    return Reply(200, b"", {"Content-Type": EVENT_STREAM, "X-Amzn-SageMaker-Content-Type": content_type,
                            "x-Amzn-Invoked-Production-Variant": "AllTraffic"}, stream=events())
