"""Inference beyond the getting-started guide, carried out by the twin on `process`: batch
transform, asynchronous and serverless endpoints, Hub models by id and custom inference code,
each answered by the model — and what the twin cannot carry out refused, loudly. Its own
module: one twin runs per process."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

import sagetwin
from sagetwin.core.progress import SilentReporter
from tests import test_aws_twin
from tests.aws import twin_client
from tests.conftest import run_cli
from tests.inference_kinds import HUB_ID, INFERENCE_PY, model_archive, prefilled_hub_cache, records_file
from tests.test_aws_twin import VERSIONS, leftovers

REPO = Path(__file__).resolve().parents[1]
twin, sdk = test_aws_twin.twin, test_aws_twin.sdk  # module-scoped fixtures: this module's own twin and SDK session
KINDS_SDK = REPO / "tests" / "sdk_workflow" / "inference_kinds.py"
RECORDS = 12


@pytest.fixture(scope="module")
def files(tiny_model, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("kinds")
    model_dir = tiny_model.local_path
    return {"custom": model_archive(model_dir, folder / "custom.tar.gz", inference_py=INFERENCE_PY),
            "plain": model_archive(model_dir, folder / "plain.tar.gz"),
            "records": records_file(folder / "reviews.jsonl", RECORDS),
            "hf_home": prefilled_hub_cache(model_dir, folder / "hf-home")}


def run_kinds(backend: str, files: dict[str, Path], *flags: str) -> dict:
    since = time.time() - 0.1
    result = run_cli("exec", "--backend", backend, "--no-persist", "--", sys.executable, str(KINDS_SDK),
                     str(files["custom"]), str(files["plain"]), str(files["records"]), HUB_ID, *flags,
                     env={"HF_HOME": str(files["hf_home"]), "HF_HUB_OFFLINE": "1"}, timeout=1500)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert not leftovers(since), "the twin of `sagetwin exec`, its endpoints, jobs and queues all end with it"
    line = next(line for line in result.stdout.splitlines() if "RESULT {" in line)
    return json.loads(line.split("RESULT ", 1)[1])


def check_kinds(result: dict) -> None:
    assert result["custom"] == {"custom": "reldnah motsuc a"}  # the archive's own predict_fn, not the pipeline
    lines = result["transform_output"].splitlines()
    assert result["transform_status"] == "Completed" and len(lines) == RECORDS
    assert all(set(json.loads(line)[0]) == {"label", "score"} for line in lines)  # one prediction per record
    assert result["async"] == {"custom": "suonorhcnysa"}
    assert result["async_output_path"].startswith("s3://sagemaker-us-east-1-123456789012/kinds/async-output/")
    assert result["async_predict"] == {"custom": "rof detiaw"}
    assert set(result["hub"][0]) == {"label", "score"}


@pytest.fixture(scope="module")
def kinds_on_process(files) -> dict:
    return run_kinds("process", files)


@pytest.mark.slow
def test_the_sdks_inference_cells_run_through_the_twin_on_process(kinds_on_process):
    check_kinds(kinds_on_process)


@pytest.mark.slow
def test_custom_inference_code_answers_the_same_on_process_directly_and_through_the_twin(files, kinds_on_process):
    model = sagetwin.HuggingFaceModel(model_data=str(files["custom"]), backend="process", reporter=SilentReporter(),
                                      **VERSIONS)
    with model.deploy() as predictor:
        direct = predictor.predict({"inputs": "a custom handler"})
    assert direct == kinds_on_process["custom"] == {"custom": "reldnah motsuc a"}


def test_exec_ending_with_requests_still_queued_leaves_nothing_running(files):
    result = run_kinds("process", files, "--leave-queued")
    assert result["endpoint"] and result["transform"]  # dropped with the twin: the endpoint, its queue, the job


# --- one twin in this process for the failure paths and limits ---------------------------------


def hf_model(sdk, uri: str, **env):
    from sagemaker.huggingface import HuggingFaceModel

    return HuggingFaceModel(model_data=uri, role=sdk["role"], sagemaker_session=sdk["session"], env=env or None,
                            **VERSIONS)


@pytest.fixture(scope="module")
def uris(sdk, files) -> dict[str, str]:
    upload = sdk["session"].upload_data
    return {"custom": upload(str(files["custom"]), key_prefix="limits/custom"),
            "plain": upload(str(files["plain"]), key_prefix="limits/plain"),
            "records": upload(str(files["records"]), key_prefix="limits/records")}


def transform_log(twin, job_name: str) -> str:
    streams = twin.clients.logs.describe_log_streams(logGroupName="/aws/sagemaker/TransformJobs",
                                                     logStreamNamePrefix=job_name)["logStreams"]
    return "\n".join(event["message"] for stream in streams for event in twin.clients.logs.get_log_events(
        logGroupName="/aws/sagemaker/TransformJobs", logStreamName=stream["logStreamName"])["events"])


def test_several_json_lines_in_one_request_fail_the_transform_as_the_toolkit_does(twin, sdk, uris):
    from sagemaker.exceptions import UnexpectedStatusException

    transformer = hf_model(sdk, uris["plain"], HF_TASK="text-classification").transformer(
        1, "ml.p3.2xlarge", strategy="MultiRecord", output_path=f"s3://{sdk['bucket']}/limits/multi",
        assemble_with="Line")
    with pytest.raises(UnexpectedStatusException) as info:
        transformer.transform(data=uris["records"], content_type="application/json", split_type="Line", logs=False)
    assert "ClientError: See job logs for more information" in str(info.value)
    log = transform_log(twin, transformer.latest_transform_job.name)
    assert "ClientError: 400" in log and "Extra data" in log  # the toolkit's own JSON error, from the model server


def test_a_transform_joins_answers_to_their_input_and_filters_them(twin, sdk, uris, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": n, "review": {"inputs": f"film {n}"}}) + "\n" for n in range(3)))
    data = sdk["session"].upload_data(str(rows), key_prefix="limits/joined-input")
    transformer = hf_model(sdk, uris["plain"], HF_TASK="text-classification").transformer(
        1, "ml.p3.2xlarge", strategy="SingleRecord", output_path=f"s3://{sdk['bucket']}/limits/joined",
        assemble_with="Line", accept="application/json")
    transformer.transform(data=data, content_type="application/json", split_type="Line", input_filter="$.review",
                          join_source="Input", output_filter="$['id','SageMakerOutput']", logs=False)
    written = sdk["session"].read_s3_file(sdk["bucket"], "limits/joined/rows.jsonl.out").splitlines()
    joined = [json.loads(line) for line in written]
    assert [row["id"] for row in joined] == [0, 1, 2] and all(set(r) == {"id", "SageMakerOutput"} for r in joined)
    assert set(joined[0]["SageMakerOutput"][0]) == {"label", "score"}


def test_an_async_request_whose_input_is_missing_fails_to_the_failure_path(twin, sdk, uris):
    from sagemaker.async_inference import AsyncInferenceConfig

    failures = f"s3://{sdk['bucket']}/limits/async-failures"
    predictor = hf_model(sdk, uris["custom"]).deploy(1, "ml.g4dn.xlarge", async_inference_config=AsyncInferenceConfig(
        output_path=f"s3://{sdk['bucket']}/limits/async-out", failure_path=failures))
    try:
        runtime = twin_client(twin, "sagemaker-runtime")
        answer = runtime.invoke_endpoint_async(EndpointName=predictor.endpoint_name,
                                               InputLocation=f"s3://{sdk['bucket']}/limits/no-such-input.json")
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert answer["FailureLocation"] == f"{failures}/{answer['InferenceId']}-error.out"
        key = answer["FailureLocation"].split(sdk["bucket"] + "/", 1)[1]
        twin.clients.s3.get_waiter("object_exists").wait(Bucket=sdk["bucket"], Key=key,
                                                         WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        message = sdk["session"].read_s3_file(sdk["bucket"], key)
        assert "no-such-input.json" in message and "NoSuchKey" in message
        with pytest.raises(twin.clients.sagemaker.exceptions.ClientError, match="asynchronous inference endpoint"):
            runtime.invoke_endpoint(EndpointName=predictor.endpoint_name, Body=b'{"inputs": "x"}',
                                    ContentType="application/json")
    finally:
        predictor.delete_endpoint()


def test_a_serverless_endpoint_predicts_refuses_5_mb_and_throttles_over_max_concurrency(twin, sdk, uris):
    from botocore.exceptions import ClientError
    from sagemaker.serverless import ServerlessInferenceConfig

    predictor = hf_model(sdk, uris["custom"]).deploy(serverless_inference_config=ServerlessInferenceConfig(2048, 1))
    try:
        assert predictor.predict({"inputs": "serverless"}) == {"custom": "sselrevres"}
        with pytest.raises(ClientError) as too_large:
            predictor.predict({"inputs": "x" * (5 * 1024 * 1024)})
        assert "HTTP content length exceeded 4194304 bytes" in str(too_large.value)
        runtime = twin_client(twin, "sagemaker-runtime", retries={"total_max_attempts": 1})
        codes: list[str] = []

        def call() -> None:
            try:
                runtime.invoke_endpoint(EndpointName=predictor.endpoint_name, ContentType="application/json",
                                        Body=json.dumps({"inputs": "slow", "sleep": 1.5}))
                codes.append("ok")
            except ClientError as exc:
                codes.append(exc.response["Error"]["Code"])

        callers = [threading.Thread(target=call) for _ in range(3)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        assert sorted(codes) == ["ThrottlingException", "ThrottlingException", "ok"], codes
    finally:
        predictor.delete_endpoint()


def test_a_serverless_memory_size_outside_the_allowed_values_is_refused(twin, sdk, uris):
    from botocore.exceptions import ClientError
    from sagemaker.serverless import ServerlessInferenceConfig

    with pytest.raises(ClientError, match="memorySizeInMB") as info:
        hf_model(sdk, uris["custom"]).deploy(serverless_inference_config=ServerlessInferenceConfig(3000, 2))
    assert info.value.response["Error"]["Code"] == "ValidationException"


def test_a_hub_id_missing_from_the_offline_cache_fails_the_endpoint_naming_id_cache_and_fix(twin, sdk, tmp_path,
                                                                                               monkeypatch):
    from huggingface_hub import constants
    from sagemaker.huggingface import HuggingFaceModel

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    model = HuggingFaceModel(env={"HF_MODEL_ID": "sagetwin-tests/not-in-the-cache", "HF_TASK": "text-classification"},
                             role=sdk["role"], sagemaker_session=sdk["session"], **VERSIONS)
    with pytest.raises(Exception, match="Failed") as info:
        model.deploy(1, "ml.g4dn.xlarge")
    name = model.endpoint_name
    reason = twin.clients.sagemaker.describe_endpoint(EndpointName=name)["FailureReason"]
    assert "sagetwin-tests/not-in-the-cache" in reason and str(tmp_path / "empty-cache") in reason, reason
    assert "huggingface-cli download" in reason and "HF_HOME" in reason, reason
    assert "not-in-the-cache" in str(info.value)
    twin.clients.sagemaker.delete_endpoint(EndpointName=name)


def test_actions_the_twin_does_not_carry_out_are_refused_from_the_sdk_call_and_it_keeps_serving(twin, sdk):
    from botocore.exceptions import ClientError
    from sagemaker.processing import Processor
    from sagemaker.tuner import HyperparameterTuner, IntegerParameter
    from sagemaker.workflow.pipeline import Pipeline

    from tests.test_aws_twin import estimator

    processor = Processor(role=sdk["role"], image_uri="123.dkr.ecr.us-east-1.amazonaws.com/mine:1", instance_count=1,
                          instance_type="ml.m5.xlarge", sagemaker_session=sdk["session"])
    tuner = HyperparameterTuner(estimator(sdk, REPO / "train_scripts"), "eval_loss", {"epochs": IntegerParameter(1, 3)},
                                metric_definitions=[{"Name": "eval_loss", "Regex": "eval_loss: ([0-9.]+)"}],
                                objective_type="Minimize", max_jobs=2)
    pipeline = Pipeline(name="offline-pipeline", steps=[], sagemaker_session=sdk["session"])
    attempts = {"CreateProcessingJob": lambda: processor.run(wait=False, logs=False),
                "CreateHyperParameterTuningJob": lambda: tuner.fit(wait=False),
                "CreatePipeline": lambda: pipeline.create(sdk["role"]),
                "StartPipelineExecution": lambda: sdk["session"].sagemaker_client.start_pipeline_execution(
                    PipelineName="offline-pipeline"),
                "CreateLabelingJob": lambda: sdk["session"].sagemaker_client.create_labeling_job(  # no class at all
                    LabelingJobName="labels", LabelAttributeName="label", RoleArn=sdk["role"],
                    InputConfig={"DataSource": {"S3DataSource": {"ManifestS3Uri": f"s3://{sdk['bucket']}/m"}}},
                    OutputConfig={"S3OutputPath": f"s3://{sdk['bucket']}/labels"},
                    HumanTaskConfig={"WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t",
                                     "UiConfig": {"UiTemplateS3Uri": f"s3://{sdk['bucket']}/ui"},
                                     "PreHumanTaskLambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:pre",
                                     "TaskTitle": "t", "TaskDescription": "d", "NumberOfHumanWorkersPerDataObject": 1,
                                     "TaskTimeLimitInSeconds": 60,
                                     "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn":
                                                                       "arn:aws:lambda:us-east-1:123456789012:function:c"}})}
    for action, attempt in attempts.items():
        with pytest.raises(ClientError) as info:
            attempt()
        error = info.value.response["Error"]
        assert error["Code"] == "UnsupportedOperation", (action, error)
        assert f"sagetwin: {action} is not carried out offline" in error["Message"]
        assert "SageMaker itself" in error["Message"]
    assert twin.clients.sagemaker.list_processing_jobs()["ProcessingJobSummaries"] == []  # nothing recorded
    assert twin.clients.s3.list_buckets()["Buckets"], "the twin keeps serving"


def test_requests_the_service_refuses_are_refused(twin, sdk, uris):
    from botocore.exceptions import ClientError
    from sagemaker.async_inference import AsyncInferenceConfig

    sm = twin_client(twin, "sagemaker")
    with pytest.raises(ClientError, match="must not exceed 100 MB"):
        sm.create_transform_job(
            TransformJobName="too-large", ModelName="no-such-model", MaxPayloadInMB=30, MaxConcurrentTransforms=4,
            TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uris["records"]}}},
            TransformOutput={"S3OutputPath": f"s3://{sdk['bucket']}/x"},
            TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1})
    predictor = hf_model(sdk, uris["custom"]).deploy(1, "ml.g4dn.xlarge", async_inference_config=AsyncInferenceConfig(
        output_path=f"s3://{sdk['bucket']}/limits/refused"))
    try:
        runtime = twin_client(twin, "sagemaker-runtime")
        name = predictor.endpoint_name
        for arguments, words in (({"InputLocation": uris["records"], "Body": b"{}"}, "cannot both be given"),
                                 ({"Body": b"x" * 128_001}, "less than or equal to 128000"),
                                 ({"InputLocation": uris["records"], "RequestTTLSeconds": 30000},
                                  "between 60 and 21600"),
                                 ({"InputLocation": uris["records"], "InvocationTimeoutSeconds": 4000},
                                  "between 1 and 3600")):
            with pytest.raises(ClientError, match=words) as info:
                runtime.invoke_endpoint_async(EndpointName=name, **arguments)
            assert info.value.response["Error"]["Code"] == "ValidationError"
        inline = runtime.invoke_endpoint_async(EndpointName=name, Body=b'{"inputs": "inline"}',
                                               ContentType="application/json")
        key = inline["OutputLocation"].split(sdk["bucket"] + "/", 1)[1]
        twin.clients.s3.get_waiter("object_exists").wait(Bucket=sdk["bucket"], Key=key,
                                                         WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        assert json.loads(sdk["session"].read_s3_file(sdk["bucket"], key)) == {"custom": "enilni"}
    finally:
        predictor.delete_endpoint()


def test_experiments_are_deleted_in_the_services_order(twin):
    from botocore.exceptions import ClientError

    sm = twin_client(twin, "sagemaker")
    sm.create_experiment(ExperimentName="offline-experiment")
    sm.create_trial(TrialName="offline-trial", ExperimentName="offline-experiment")
    sm.create_trial_component(TrialComponentName="offline-component")
    sm.associate_trial_component(TrialComponentName="offline-component", TrialName="offline-trial")
    for delete, words in ((lambda: sm.delete_experiment(ExperimentName="offline-experiment"), "trials"),
                          (lambda: sm.delete_trial(TrialName="offline-trial"), "trial components"),
                          (lambda: sm.delete_trial_component(TrialComponentName="offline-component"), "disassociate")):
        with pytest.raises(ClientError, match=words):
            delete()
    sm.disassociate_trial_component(TrialComponentName="offline-component", TrialName="offline-trial")
    sm.delete_trial_component(TrialComponentName="offline-component")
    sm.delete_trial(TrialName="offline-trial")
    sm.delete_experiment(ExperimentName="offline-experiment")
    assert sm.list_experiments()["ExperimentSummaries"] == []
