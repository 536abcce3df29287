"""The in-process hook of the AWS twin: clients reach the twin and nothing else, the SDK's
cloud-sized polling shrinks, and nothing changes once the hook is taken back."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from sagetwin.aws import client_hook
from sagetwin.aws.twin import HOOK_DIR


@pytest.fixture
def hooked():
    client_hook.install("http://127.0.0.1:9")
    yield
    client_hook.uninstall()


def endpoint_of(client) -> str:
    return client.meta.endpoint_url


def test_an_explicit_aws_url_is_sent_to_the_twin(hooked):
    import boto3

    session = boto3.session.Session(region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    # the SDK's own call: sts with the regional URL, which AWS_ENDPOINT_URL does not override
    assert endpoint_of(session.client("sts", endpoint_url="https://sts.eu-west-1.amazonaws.com")) == \
        "http://127.0.0.1:9"
    assert endpoint_of(session.client("s3")) == "http://127.0.0.1:9"
    assert endpoint_of(session.client("s3", endpoint_url="http://127.0.0.1:4566")) == "http://127.0.0.1:4566"


def test_without_the_hook_clients_go_where_they_would(hooked):
    import boto3

    client_hook.uninstall()
    session = boto3.session.Session(region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    assert endpoint_of(session.client("sts", endpoint_url="https://sts.eu-west-1.amazonaws.com")) == \
        "https://sts.eu-west-1.amazonaws.com"


def test_the_twin_must_be_on_loopback():
    with pytest.raises(ValueError, match="not on 127.0.0.1"):
        client_hook.install("http://10.0.0.8:5000")


def test_the_sdks_polling_is_short_and_its_telemetry_silent(hooked):
    import inspect

    import sagemaker.session
    import sagemaker.telemetry.telemetry_logging as telemetry

    assert inspect.signature(sagemaker.session.Session.logs_for_job).parameters["poll"].default == client_hook.POLL_S
    assert inspect.signature(sagemaker.session.Session.wait_for_endpoint).parameters["poll"].default == \
        client_hook.POLL_S
    assert client_hook.SDK_DESCRIBE_INTERVAL_S not in sagemaker.session._logs_for_job.__code__.co_consts
    assert telemetry._requests_helper("https://example.invalid/telemetry", 1) is None


class RecordedClock:
    """A clock whose sleeps are recorded, not slept; ``grow`` is appended to after ``after`` of them."""

    def __init__(self, grow: Path | None = None, after: int = 0) -> None:
        self.slept: list[float] = []
        self.now, self.grow, self.after = 0.0, grow, after

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self.grow is not None and len(self.slept) == self.after:
            with self.grow.open("ab") as changes:
                changes.write(b".")

    def monotonic(self) -> float:
        return self.now


def logs_loop(time, state):  # stands in for _logs_for_job: same code object, same local name
    time.sleep(0.5)


def test_the_sdks_waits_under_the_twin(hooked, tmp_path):
    import sagemaker.session

    assert isinstance(sagemaker.session.time, client_hook._SdkTime)
    JOB_COMPLETE, TAILING = sagemaker.session.LogState.JOB_COMPLETE, sagemaker.session.LogState.TAILING
    changes = tmp_path / "changes"
    changes.write_bytes(b"")
    client_hook._installed["changes"] = str(changes)

    # a poll's wait ends when the twin's changes file grows (here after 3 checks), not a poll later
    clock = RecordedClock(grow=changes, after=3)
    shim = client_hook._SdkTime(clock, logs_loop.__code__, JOB_COMPLETE, {logs_loop.__code__})
    logs_loop(shim, TAILING)
    assert clock.slept == [client_hook.CHANGE_CHECK_S] * 3
    # no change: the whole poll interval, in checks
    clock.slept.clear()
    clock.grow = None
    logs_loop(shim, TAILING)
    assert sum(clock.slept) == pytest.approx(0.5) and len(clock.slept) == round(0.5 / client_hook.CHANGE_CHECK_S)
    # a change made while the SDK was describing (between two waits) ends the next wait at once
    with changes.open("ab") as grown:
        grown.write(b".")
    clock.slept.clear()
    logs_loop(shim, TAILING)
    assert clock.slept == []
    logs_loop(shim, JOB_COMPLETE)  # skipped: the twin put every line in CloudWatch before the end
    shim.sleep(0.25)  # any other caller sleeps as asked, in one piece
    assert clock.slept == [0.25]
    client_hook.uninstall()
    logs_loop(shim, JOB_COMPLETE)  # not under the twin: the SDK's own pause again, in one piece
    assert clock.slept == [0.25, 0.5]
    assert sagemaker.session.time.time() > 0  # the rest of time is time's


def test_the_sdks_own_poll_loops_are_the_ones_fitted(hooked):
    import sagemaker.session

    loops = sagemaker.session.time._loops
    for function in (sagemaker.session._logs_for_job, sagemaker.session._wait_until,
                     sagemaker.session._wait_until_training_done, sagemaker.session.Session.logs_for_transform_job):
        assert function.__code__ in loops, function.__name__
    for function in (sagemaker.session._logs_for_job, sagemaker.session.Session.logs_for_transform_job):
        assert client_hook.SDK_DESCRIBE_INTERVAL_S not in function.__code__.co_consts, function.__name__
    assert inspect.signature(sagemaker.session.Session.logs_for_transform_job).parameters["poll"].default == \
        client_hook.POLL_S


def test_a_poll_waits_its_whole_interval_where_the_changes_file_is_gone(hooked, tmp_path):
    client_hook._installed["changes"] = str(tmp_path / "never-made")
    clock = RecordedClock()
    shim = client_hook._SdkTime(clock, logs_loop.__code__, -1, {logs_loop.__code__})
    logs_loop(shim, 0)
    assert clock.slept == [0.5]


def test_the_startup_hook_applies_in_a_fresh_python_before_anything_is_imported():
    code = ("import boto3, json; s = boto3.session.Session(region_name='us-west-2', aws_access_key_id='x', "
            "aws_secret_access_key='x'); print(s.client('sts', endpoint_url='https://sts.us-west-2.amazonaws.com')"
            ".meta.endpoint_url)")
    env = {"SAGETWIN_AWS_ENDPOINT": "http://127.0.0.1:7", "PYTHONPATH": str(HOOK_DIR), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "http://127.0.0.1:7"


def test_s3fs_clients_made_through_aiobotocore_reach_the_twin_too(hooked):
    import asyncio

    from aiobotocore.session import get_session

    async def endpoint() -> str:
        async with get_session().create_client("s3", region_name="us-east-1", aws_access_key_id="x",
                                               aws_secret_access_key="x",
                                               endpoint_url="https://s3.us-east-1.amazonaws.com") as client:
            return client.meta.endpoint_url

    assert asyncio.run(endpoint()) == "http://127.0.0.1:9"


def test_the_sdks_endpoint_table_is_read_once_and_gives_the_same_urls(hooked):
    import sagemaker.utils

    first = sagemaker.utils._botocore_resolver()
    assert sagemaker.utils._botocore_resolver() is first
    assert sagemaker.utils.sts_regional_endpoint("eu-west-1") == "https://sts.eu-west-1.amazonaws.com"
