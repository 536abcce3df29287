"""``--dry-run`` for the sagemaker backend: the real SDK code runs fit and deploy against a boto
session that records every request and answers it locally, so the exact CreateTrainingJob /
CreateModel / CreateEndpointConfig / CreateEndpoint requests are shown and none is sent."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class RequestRecorder:
    """For --dry-run: record every AWS request the SDK makes and answer it locally, so nothing is sent.

    Registered on a boto3 session's ``before-call`` event, which lets a handler return the
    response instead of sending the request; the answers are the minimum the SDK needs to go on.
    """

    def __init__(self, account: str = "000000000000", region: str = "us-east-1") -> None:
        self.account = account
        self.region = region
        self.calls: list[dict[str, Any]] = []
        self._training: dict[str, dict[str, Any]] = {}

    def session(self) -> Any:
        """A boto3 session whose every request is recorded and answered here. Placeholder
        credentials: nothing is signed or sent, and the credential chain never probes the
        instance metadata service."""
        import boto3

        session = boto3.Session(region_name=self.region, aws_access_key_id="dry-run", aws_secret_access_key="dry-run")
        session.events.register("before-parameter-build", self._record)
        session.events.register("before-call", self._answer_locally)
        return session

    def _record(self, params: dict[str, Any], model: Any, context: dict[str, Any], **kwargs: Any) -> None:
        """The API parameters, as the caller gave them (before serialisation)."""
        context["sagetwin_params"] = dict(params)
        self.calls.append({"service": model.service_model.service_name, "operation": model.name,
                           "request": dict(params)})

    def _answer_locally(self, model: Any, context: dict[str, Any], **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Returning a response from before-call skips sending the request (and signing it)."""
        params = context.get("sagetwin_params", {})
        return _FakeHTTPResponse(), self._answer(model.service_model.service_name, model.name, params)

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{kind}/{name.lower()}"

    def _answer(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        meta = {"ResponseMetadata": {"HTTPStatusCode": 200, "RequestId": "dry-run"}}
        if service == "sts":
            return {**meta, "Account": self.account, "Arn": f"arn:aws:iam::{self.account}:user/dry-run",
                    "UserId": "DRYRUN"}
        if service == "s3" and operation == "GetObject":
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "dry run: nothing was written"}}, operation)
        if service == "s3":
            return {**meta, "KeyCount": 0, "Contents": [], "ETag": '"dry-run"', "Buckets": [],
                    "Owner": {"ID": self.account}}
        if operation == "CreateTrainingJob":
            self._training[params["TrainingJobName"]] = params
            return {**meta, "TrainingJobArn": self._arn("training-job", params["TrainingJobName"])}
        if operation == "DescribeTrainingJob":
            name = params["TrainingJobName"]
            created = self._training.get(name, {})
            output = created.get("OutputDataConfig", {}).get("S3OutputPath", "s3://dry-run")
            return {**meta, "TrainingJobName": name, "TrainingJobArn": self._arn("training-job", name),
                    "TrainingJobStatus": "Completed", "SecondaryStatus": "Completed",
                    "ModelArtifacts": {"S3ModelArtifacts": f"{output}/{name}/output/model.tar.gz"},
                    "AlgorithmSpecification": created.get("AlgorithmSpecification", {}),
                    "ResourceConfig": created.get("ResourceConfig", {}), "HyperParameters":
                    created.get("HyperParameters", {}), "RoleArn": created.get("RoleArn", ""),
                    "StoppingCondition": created.get("StoppingCondition", {}), "FinalMetricDataList": []}
        if operation.startswith("Create"):
            kind = {"CreateModel": "ModelArn", "CreateEndpointConfig": "EndpointConfigArn",
                    "CreateEndpoint": "EndpointArn"}.get(operation, "Arn")
            return {**meta, kind: self._arn(operation[6:].lower(), next(iter(params.values()), "x"))}
        if operation == "DescribeEndpoint":
            return {**meta, "EndpointName": params["EndpointName"], "EndpointStatus": "InService",
                    "EndpointConfigName": params["EndpointName"],
                    "EndpointArn": self._arn("endpoint", params["EndpointName"])}
        if service == "logs":
            return {**meta, "logStreams": [], "events": []}
        return meta

    def launches(self) -> list[dict[str, Any]]:
        """The requests that would create billed resources, in order."""
        wanted = ("CreateTrainingJob", "CreateModel", "CreateEndpointConfig", "CreateEndpoint")
        return [c for c in self.calls if c["operation"] in wanted]


class _FakeHTTPResponse:
    status_code = 200
    headers: dict[str, str] = {}
    raw = None
    content = b""
