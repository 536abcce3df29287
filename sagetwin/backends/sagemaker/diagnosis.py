"""Turning what SageMaker and AWS answered into errors a person can act on: a failed job with
its reason and log tail, quota and permission refusals with their fixes."""

from __future__ import annotations

from typing import Any

from sagetwin.core.errors import ConfigurationError, EndpointError, TrainingError
from sagetwin.sagemaker_sdk.boto import botocore_config

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def training_failure(boto: Any, sagemaker_client: Any, job_name: str) -> TrainingError:
    description = sagemaker_client.describe_training_job(TrainingJobName=job_name)
    reason = description.get("FailureReason", "no FailureReason given")
    return TrainingError(
        f"training job {job_name} ended {description.get('TrainingJobStatus')}: {reason}",
        "fix the error shown in the log below; reproduce it offline with --backend process or local.",
        exit_code=None, log_tail=training_log_tail(boto, job_name),
    )


def training_log_tail(boto: Any, job_name: str, lines: int = 30) -> str:
    try:
        logs = boto.client("logs", config=botocore_config())
        streams = logs.describe_log_streams(logGroupName=TRAINING_LOG_GROUP,
                                            logStreamNamePrefix=job_name)["logStreams"]
        events: list[str] = []
        for stream in streams:
            got = logs.get_log_events(logGroupName=TRAINING_LOG_GROUP, logStreamName=stream["logStreamName"],
                                      limit=lines, startFromHead=False)
            events += [e["message"] for e in got["events"]]
        return "\n".join(events[-lines:])
    except Exception:
        return ""


def client_error(exc: Exception, what: str) -> Exception:
    from botocore.exceptions import ClientError, ConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return ConfigurationError("no AWS credentials were found.", "run `aws configure` or set AWS_PROFILE.")
    if isinstance(exc, ConnectionError):  # the network, a proxy, or the endpoint URL: not an answer of AWS's
        return EndpointError(f"{what}: AWS could not be reached ({exc}).",
                             "check the network and AWS_ENDPOINT_URL*, then look at the job in the console.")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code == "ResourceLimitExceeded":
            return ConfigurationError(f"{what}: no quota for this instance type ({message}).",
                                      "request a quota increase in Service Quotas, or choose another instance_type.")
        if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
            return ConfigurationError(f"{what}: AWS denied the request ({code}: {message}).",
                                      "check the credentials and that the role/user may use SageMaker and S3.")
        return EndpointError(f"{what}: AWS answered {code}: {message}", "see the AWS error above.")
    return exc


def endpoint_failure_reason(sagemaker_client: Any, name: str) -> str:
    try:
        return sagemaker_client.describe_endpoint(EndpointName=name).get("FailureReason", "")
    except Exception:
        return "no FailureReason available"


# the calls `estimator.fit` makes before the job exists: the source code's upload, then the create
BEFORE_THE_JOB = {"CreateTrainingJob", "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
                  "CreateBucket", "HeadBucket", "GetBucketLocation", "GetCallerIdentity"}


def never_created(exc: BaseException) -> bool:
    """The error came before the job existed (a refused CreateTrainingJob, say, for want of quota):
    nothing runs, so nothing is stopped or said to bill."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError) or exc.operation_name not in BEFORE_THE_JOB:
        return False
    error = exc.response.get("Error", {})
    # a create whose reply was lost, retried by botocore, is refused because the job exists
    return error.get("Code") != "ResourceInUse" and "unique" not in str(error.get("Message", "")).lower()


def stop_after_error(sagemaker_client: Any, job_name: str, hourly: float | None = None,
                     max_run: int | None = None, cause: BaseException | None = None) -> str:
    """Stop a job sagetwin can no longer follow (it would bill until max_run); say what happened,
    and if it could not be stopped, what it costs and how to stop it. Empty: no job was created."""
    if cause is not None and never_created(cause):
        return ""
    try:
        sagemaker_client.stop_training_job(TrainingJobName=job_name)
        return f"The training job {job_name} was stopped, so it does not go on billing."
    except Exception as exc:
        cost = f" at ${hourly:.3f}/h" if hourly else ""
        until = f"its max_run ({max_run} s after it started)" if max_run else "its max_run"
        return (f"The training job {job_name} could not be stopped ({exc}) and may still run (and bill{cost}) until "
                f"{until}: stop it with `aws sagemaker stop-training-job --training-job-name {job_name}`.")


def delete_keeping(original: BaseException, endpoint: Any, hourly: float | None) -> None:
    """Delete after a failure; if that fails too, the original error stays the one raised and
    says what is left running, what it costs and how to remove it."""
    try:
        endpoint.delete()
    except Exception as exc:
        original.add_note(f"endpoint {endpoint.name} could not be deleted ({type(exc).__name__}: {exc}); it may "
                          f"still run{f' at ${hourly:.3f}/h' if hourly else ''}: remove it with "
                          f"`sagetwin endpoints --delete {endpoint.name}`")
