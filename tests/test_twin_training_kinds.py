"""Training cells beyond the getting-started guide, through the twin on `process`, written as
SageMaker SDK v2 users write them: ``metric_definitions`` → ``TrainingJobAnalytics``,
``HuggingFace.attach(name)`` → ``deploy`` → ``predict``. Its own module: one twin per process."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests import test_aws_twin
from tests.test_aws_twin import VERSIONS

twin, sdk = test_aws_twin.twin, test_aws_twin.sdk  # module-scoped fixtures: this module's own twin and SDK session

# a training script that logs the Trainer's way and leaves the tiny classifier as its model
METRICS_SOURCE = Path(__file__).parent / "sdk_workflow" / "metrics"
METRICS = [{"Name": "loss", "Regex": r"'loss': ([0-9.]+)"},
           {"Name": "eval_loss", "Regex": r"'eval_loss': ([0-9.]+)"},
           {"Name": "eval_accuracy", "Regex": r"'eval_accuracy': ([0-9.]+)"},
           {"Name": "eval_f1", "Regex": r"'eval_f1': ([0-9.]+)"}]


class DescribeShapes:
    """Every Describe* answer the SDK receives, checked against the service's API model: the
    required members there, and no member the model does not have."""

    def __init__(self, client) -> None:
        import botocore.session

        self.model = botocore.session.get_session().get_service_model("sagemaker")
        self.seen: set[str] = set()
        self.problems: list[str] = []
        client.meta.events.register("after-call.sagemaker", self.check)

    def check(self, http_response, parsed, model, **kwargs) -> None:
        if not model.name.startswith("Describe") or "Error" in parsed:
            return
        self.seen.add(model.name)
        keys = set(parsed) - {"ResponseMetadata"}
        members, required = set(model.output_shape.members), set(model.output_shape.required_members)
        if missing := required - keys:
            self.problems.append(f"{model.name} lacks {sorted(missing)}")
        if extra := keys - members:
            self.problems.append(f"{model.name} has {sorted(extra)}, which AWS never returns")


@pytest.fixture(scope="module")
def shapes(sdk) -> DescribeShapes:
    return DescribeShapes(sdk["session"].sagemaker_client)


@pytest.fixture(scope="module")
def fitted(sdk, shapes, tiny_model, tmp_path_factory):
    from sagemaker.huggingface import HuggingFace

    model_dir = tmp_path_factory.mktemp("model")
    for path in tiny_model.local_path.iterdir():
        if path.is_file() and not path.name.startswith("."):
            shutil.copy(path, model_dir / path.name)
    model_uri = sdk["session"].upload_data(str(model_dir), key_prefix="training-kinds/model")
    estimator = HuggingFace(entry_point="train.py", source_dir=str(METRICS_SOURCE), instance_type="ml.p3.2xlarge",
                            instance_count=1, role=sdk["role"], sagemaker_session=sdk["session"],
                            metric_definitions=METRICS, **VERSIONS)
    estimator.fit({"model": model_uri})
    return estimator


def test_training_job_analytics_holds_the_train_loss_and_every_eval_metric(sdk, fitted):
    from sagemaker.analytics import TrainingJobAnalytics

    frame = TrainingJobAnalytics(fitted.latest_training_job.name, sagemaker_session=sdk["session"]).dataframe()
    assert set(frame.metric_name) == {"loss", "eval_loss", "eval_accuracy", "eval_f1"}
    assert frame[frame.metric_name == "eval_accuracy"].value.tolist() == [0.75]
    assert frame[frame.metric_name == "loss"].value.mean() == pytest.approx(0.7)  # three points, one bucket
    final = {m["MetricName"]: m["Value"] for m in sdk["session"].sagemaker_client.describe_training_job(
        TrainingJobName=fitted.latest_training_job.name)["FinalMetricDataList"]}
    assert final == {"loss": 0.5, "eval_loss": 0.45, "eval_accuracy": 0.75, "eval_f1": 0.7}


def test_the_twin_signals_a_jobs_end_to_waiting_clients(twin, fitted):
    """The file client processes watch between polls (aws.changes): private, named in the
    environment clients get, grown when a job ends."""
    path = twin.changes.path
    assert twin.environment()["SAGETWIN_AWS_CHANGES"] == str(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.stat().st_size >= 1  # the fitted job's end
    before = path.stat().st_size
    twin.changes.signal()
    assert path.stat().st_size == before + 1


def test_attach_to_a_finished_job_then_deploy_and_predict(sdk, fitted):
    from sagemaker.huggingface import HuggingFace

    attached = HuggingFace.attach(fitted.latest_training_job.name, sagemaker_session=sdk["session"])
    assert attached.model_data == fitted.model_data
    predictor = attached.deploy(1, "ml.g4dn.xlarge")
    try:
        answer = predictor.predict({"inputs": "attached and deployed"})
        assert set(answer[0]) == {"label", "score"}
    finally:
        predictor.delete_endpoint()


def test_every_describe_the_sdk_calls_has_the_services_shape(sdk, shapes, fitted, tmp_path):
    from sagemaker.analytics import TrainingJobAnalytics
    from sagemaker.huggingface import HuggingFace

    name = fitted.latest_training_job.name
    TrainingJobAnalytics(name, sagemaker_session=sdk["session"]).dataframe()
    attached = HuggingFace.attach(name, sagemaker_session=sdk["session"])
    predictor = attached.deploy(1, "ml.g4dn.xlarge")
    try:
        sm = sdk["session"].sagemaker_client
        sm.describe_model(ModelName=sm.describe_endpoint_config(EndpointConfigName=predictor.endpoint_name)[
            "ProductionVariants"][0]["ModelName"])
    finally:
        predictor.delete_endpoint()
    (tmp_path / "rows.jsonl").write_text('{"inputs": "one"}\n')
    data = sdk["session"].upload_data(str(tmp_path / "rows.jsonl"), key_prefix="training-kinds/rows")
    transformer = attached.transformer(1, "ml.m5.xlarge", strategy="SingleRecord",
                                       output_path=f"s3://{sdk['bucket']}/training-kinds/out")
    transformer.transform(data=data, content_type="application/json", split_type="Line", logs=False)
    assert {"DescribeTrainingJob", "DescribeEndpoint", "DescribeEndpointConfig", "DescribeModel",
            "DescribeTransformJob"} <= shapes.seen, shapes.seen
    assert not shapes.problems, "\n".join(shapes.problems)
    described = sm.describe_training_job(TrainingJobName=name)
    assert described["OutputDataConfig"]["KmsKeyId"] == "" and described["EnableNetworkIsolation"] is False
    assert described["AlgorithmSpecification"]["MetricDefinitions"] == METRICS  # as sent, not moto's canned one


def test_the_shape_check_can_fail():
    import types

    import botocore.session

    client = types.SimpleNamespace(meta=types.SimpleNamespace(events=types.SimpleNamespace(register=lambda *a: None)))
    shapes = DescribeShapes(client)
    model = botocore.session.get_session().get_service_model("sagemaker").operation_model("DescribeEndpoint")
    shapes.check(None, {"EndpointName": "e", "Tags": []}, model)
    assert shapes.problems == [
        "DescribeEndpoint lacks ['CreationTime', 'EndpointArn', 'EndpointStatus', 'LastModifiedTime']",
        "DescribeEndpoint has ['Tags'], which AWS never returns"]


RESUMABLE = Path(__file__).parent / "sdk_workflow" / "resumable" / "train.py"  # runs to --steps in all


def job_log(twin, job_name: str) -> str:
    logs = twin.clients.logs
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                        logStreamNamePrefix=job_name)["logStreams"]
    return "\n".join(e["message"] for s in streams for e in logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=s["logStreamName"])["events"])


def test_two_spot_jobs_with_one_checkpoint_location_the_second_resumes_from_the_first(twin, sdk, tmp_path):
    from sagemaker.huggingface import HuggingFace

    shutil.copy(RESUMABLE, tmp_path / "train.py")
    checkpoints = f"s3://{sdk['bucket']}/training-kinds/checkpoints/run-1"
    said = []
    for steps in (2, 4):
        estimator = HuggingFace(entry_point="train.py", source_dir=str(tmp_path), instance_type="ml.p3.2xlarge",
                                instance_count=1, role=sdk["role"], sagemaker_session=sdk["session"],
                                use_spot_instances=True, max_run=600, max_wait=1200, checkpoint_s3_uri=checkpoints,
                                hyperparameters={"output_dir": "/opt/ml/checkpoints", "steps": steps}, **VERSIONS)
        estimator.fit()
        log = job_log(twin, estimator.latest_training_job.name)
        said.append(next(line for line in log.splitlines() if line.startswith("resuming from")))
        described = sdk["session"].sagemaker_client.describe_training_job(
            TrainingJobName=estimator.latest_training_job.name)
        assert described["EnableManagedSpotTraining"] is True and described["BillableTimeInSeconds"] >= 1
    assert said == ["resuming from nothing", "resuming from checkpoint-2"]
    keys = {o["Key"].rsplit("/", 2)[-2] for o in twin.clients.s3.list_objects_v2(
        Bucket=sdk["bucket"], Prefix="training-kinds/checkpoints/run-1/")["Contents"]}
    assert keys == {"checkpoint-1", "checkpoint-2", "checkpoint-3", "checkpoint-4"}


@pytest.mark.parametrize("limit", ["MaxRuntimeExceeded", "MaxWaitTimeExceeded"])
def test_a_job_past_its_stopping_condition_is_stopped_as_the_service_stops_it(twin, sdk, tmp_path, limit):
    from sagemaker.huggingface import HuggingFace

    (tmp_path / "train.py").write_text("import time\nprint('training for a long time', flush=True)\ntime.sleep(300)\n")
    # the wait counts from the job's creation, the runtime from its training: with both at 3 s the wait ends first
    spot = {"use_spot_instances": True, "max_wait": 3} if limit == "MaxWaitTimeExceeded" else {}
    estimator = HuggingFace(entry_point="train.py", source_dir=str(tmp_path), instance_type="ml.p3.2xlarge",
                            instance_count=1, role=sdk["role"], sagemaker_session=sdk["session"], max_run=3, **spot,
                            **VERSIONS)
    estimator.fit(wait=False)
    name = estimator.latest_training_job.name
    sm = sdk["session"].sagemaker_client
    running = sm.describe_training_job(TrainingJobName=name)
    assert running["TrainingJobStatus"] == "InProgress" and "TrainingEndTime" not in running  # not moto's
    described = sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}) or sm.describe_training_job(
        TrainingJobName=name)
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Stopped", limit)
    assert described["SecondaryStatusTransitions"][-1]["Status"] == limit


def test_a_spot_wait_shorter_than_the_runtime_is_refused_at_create(sdk, tmp_path):
    from botocore.exceptions import ClientError
    from sagemaker.huggingface import HuggingFace

    (tmp_path / "train.py").write_text("print('never runs')\n")
    estimator = HuggingFace(entry_point="train.py", source_dir=str(tmp_path), instance_type="ml.p3.2xlarge",
                            instance_count=1, role=sdk["role"], sagemaker_session=sdk["session"],
                            use_spot_instances=True, max_run=600, max_wait=60, **VERSIONS)
    with pytest.raises(ClientError, match="It must be present and be greater than or equal to MaxRuntimeInSeconds"):
        estimator.fit(wait=False)


@pytest.mark.parametrize(("distribution", "named"), [
    ({"smdistributed": {"dataparallel": {"enabled": True}}}, "smdistributed"),
    ({"pytorchddp": {"enabled": True}}, "pytorchddp"),
    ({"mpi": {"enabled": True}}, "mpirun"),
])
def test_launchers_not_emulated_are_refused_naming_the_ddp_fallback(sdk, tmp_path, distribution, named):
    from botocore.exceptions import ClientError
    from sagemaker.huggingface import HuggingFace

    (tmp_path / "train.py").write_text("print('never runs')\n")
    estimator = HuggingFace(entry_point="train.py", source_dir=str(tmp_path), instance_type="ml.p4d.24xlarge",
                            instance_count=2, role=sdk["role"], sagemaker_session=sdk["session"],
                            distribution=distribution,
                            transformers_version="4.28.1", pytorch_version="2.0.0", py_version="py310")
    with pytest.raises(ClientError) as refused:
        estimator.fit(wait=False)
    message = str(refused.value)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert named in message and "not emulated offline" in message
    assert "fall back to PyTorch DDP" in message and "torch_distributed" in message and "--backend local" in message
    assert "(or 'pytorchddp')" not in message  # it is not a fallback that runs offline


def test_simulate_principal_policy_evaluates_the_roles_policies(twin, sdk):
    """iam:SimulatePrincipalPolicy, which SageMaker SDK v3 calls before it trains: the role's own
    policies evaluated (allowed, implicitDeny, explicitDeny; a Condition left unjudged is named)."""
    import json

    import boto3
    from botocore.exceptions import ClientError

    iam = boto3.client("iam")
    bucket = sdk["bucket"]

    def decisions(role: str, actions: list[str], resources: list[str] | None = None) -> list[tuple[str, str]]:
        answer = iam.simulate_principal_policy(PolicySourceArn=role, ActionNames=actions,
                                               **({"ResourceArns": resources} if resources else {}))
        return [(r["EvalActionName"], r["EvalDecision"]) for r in answer["EvaluationResults"]]

    role = sdk["role"]
    assert decisions(role, ["ecr:GetAuthorizationToken", "cloudwatch:PutMetricData", "ec2:DescribeVpcs",
                            "sagemaker:CreateTrainingJob", "dynamodb:PutItem"]) == [
        ("ecr:GetAuthorizationToken", "allowed"), ("cloudwatch:PutMetricData", "allowed"),
        ("ec2:DescribeVpcs", "allowed"), ("sagemaker:CreateTrainingJob", "allowed"),
        ("dynamodb:PutItem", "implicitDeny")]
    assert decisions(role, ["s3:PutObject"], [f"arn:aws:s3:::{bucket}/code/x", "arn:aws:s3:::other-bucket/x"]) == [
        ("s3:PutObject", "allowed"), ("s3:PutObject", "implicitDeny")]
    passed = iam.simulate_principal_policy(PolicySourceArn=role, ActionNames=["iam:PassRole"],
                                           ResourceArns=[role])["EvaluationResults"][0]
    assert passed["EvalDecision"] == "implicitDeny" and passed["MissingContextValues"] == ["iam:PassedToService"]

    iam.create_role(RoleName="Denied", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    iam.put_role_policy(RoleName="Denied", PolicyName="all", PolicyDocument=json.dumps({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"},
                      {"Effect": "Deny", "Action": "ecr:*", "Resource": "*"}]}))
    denied = f"arn:aws:iam::{role.split(':')[4]}:role/Denied"
    assert decisions(denied, ["ecr:GetAuthorizationToken", "s3:GetObject"]) == [
        ("ecr:GetAuthorizationToken", "explicitDeny"), ("s3:GetObject", "allowed")]
    with pytest.raises(ClientError) as missing:
        iam.simulate_principal_policy(PolicySourceArn=denied + "-gone", ActionNames=["s3:GetObject"])
    assert missing.value.response["Error"]["Code"] == "NoSuchEntity"
    # the rest of IAM is still moto's
    assert iam.get_role(RoleName="Denied")["Role"]["RoleName"] == "Denied"
