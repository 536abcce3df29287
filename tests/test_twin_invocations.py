"""InvokeEndpoint through the twin answers as SageMaker Runtime does when the model is too slow."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from sagetwin.core.limits import INVOCATION_TIMED_OUT
from tests.aws import twin_client
from tests.test_serving import archive_with_code, deploy

SLOW_THEN_FAST = '''
import time

def predict_fn(data, model):
    if data.get("inputs") == "slow":
        time.sleep(6)
    return [{"label": "POSITIVE", "score": 1.0}]
'''


@pytest.mark.slow
def test_a_prediction_past_the_timeout_is_the_runtimes_model_error(sagetwin_home, trained_tiny, tmp_path,
                                                                    no_leftover_processes):
    from sagetwin.aws.endpoints import TwinEndpoint
    from sagetwin.aws.twin import Twin

    model = archive_with_code(trained_tiny, tmp_path, SLOW_THEN_FAST)
    # SageMaker waits 60 s; the same path with 2 s, so the test does not wait a minute
    with deploy(model, invocation_timeout=2) as predictor, Twin(persist=False) as twin:
        twin.endpoints.endpoints["slow"] = TwinEndpoint("slow", status="InService", served=predictor.endpoint)
        runtime = twin_client(twin, "sagemaker-runtime", retries={"max_attempts": 1})
        started = time.monotonic()
        with pytest.raises(ClientError) as timed_out:
            runtime.invoke_endpoint(EndpointName="slow", Body=json.dumps({"inputs": "slow"}),
                                    ContentType="application/json")
        waited = time.monotonic() - started
        error = timed_out.value.response
        time.sleep(6)  # the container is still working on the slow one, as it would be on SageMaker
        fast = runtime.invoke_endpoint(EndpointName="slow", Body=json.dumps({"inputs": "fast"}),
                                       ContentType="application/json")
        twin.endpoints.endpoints.pop("slow")  # the predictor deletes its own endpoint
    assert error["Error"]["Code"] == "ModelError" and error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 0 and error["OriginalMessage"] == INVOCATION_TIMED_OUT
    assert error["Error"]["Message"].startswith(f'Received server error (0) from primary with message '
                                                f'"{INVOCATION_TIMED_OUT}". See https://')
    assert 1.5 < waited < 5, f"answered after {waited:.1f} s"
    assert json.loads(fast["Body"].read()) == [{"label": "POSITIVE", "score": 1.0}]
