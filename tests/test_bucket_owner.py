"""No bucket squatting: every S3 request on the job's bucket names the owner it expects, and a
bucket owned by another account is refused with a clear error."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

import sagetwin
from sagetwin.sagemaker_sdk.boto import ensure_bucket, upload_once

ACCOUNT = "111122223333"


class Answered:
    status_code = 200
    headers: dict[str, str] = {}
    raw = None
    content = b""


def offline_session(head_bucket_status: int = 200) -> tuple[Any, list[tuple[str, dict]]]:
    """A boto3 session whose S3 requests are recorded (after every parameter handler ran) and
    answered here; HeadBucket answers ``head_bucket_status``."""
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sent: list[tuple[str, dict]] = []

    def answer(model: Any, params: dict, **kwargs: Any) -> tuple[Any, dict]:
        url = params.get("url", "")  # the serialized request: bucket in the URL, owner in a header
        bucket = url.split("//", 1)[-1].split(".s3.", 1)[0] if ".s3." in url else url.split("/")[3]
        owner = {k.lower(): v for k, v in params.get("headers", {}).items()}.get("x-amz-expected-bucket-owner")
        sent.append((model.name, {"Bucket": bucket, **({"ExpectedBucketOwner": owner} if owner else {})}))
        response = Answered()
        if model.name == "HeadBucket" and head_bucket_status != 200:
            response = type("Refused", (Answered,), {"status_code": head_bucket_status})()
            return response, {"Error": {"Code": str(head_bucket_status), "Message": "Forbidden"},
                              "ResponseMetadata": {"HTTPStatusCode": head_bucket_status}}
        return response, {"ResponseMetadata": {"HTTPStatusCode": 200}, "KeyCount": 0, "Contents": []}

    session.events.register("before-call.s3", answer)
    return session, sent


def test_every_request_on_the_bucket_names_its_expected_owner(tmp_path):
    session, sent = offline_session()
    ensure_bucket(session, "my-bucket", ACCOUNT)
    (tmp_path / "data.txt").write_text("training data")
    upload_once(session, tmp_path, "my-bucket")
    session.client("s3").put_object(Bucket="someone-elses", Key="k", Body=b"x")  # another bucket: untouched
    on_ours = [(op, params) for op, params in sent if params.get("Bucket") == "my-bucket"]
    assert {op for op, _ in on_ours} >= {"HeadBucket", "ListObjectsV2", "PutObject"}
    assert all(params.get("ExpectedBucketOwner") == ACCOUNT for _, params in on_ours), on_ours
    assert "ExpectedBucketOwner" not in sent[-1][1]


def test_a_bucket_owned_by_another_account_is_refused():
    session, sent = offline_session(head_bucket_status=403)
    with pytest.raises(sagetwin.ConfigurationError, match="not owned by your account 111122223333"):
        ensure_bucket(session, "sagemaker-us-east-1-111122223333", ACCOUNT)
    assert [op for op, _ in sent] == ["HeadBucket"]  # nothing was created or uploaded
