"""A two-host data-parallel job as the SageMaker SDK v2 distributed examples write it:
``instance_count=2`` with ``distribution={"torch_distributed": {"enabled": True}}``. Prints
``RESULT {json}`` with the job's describe, its log streams and what each stream says.

    python distributed_training.py
"""

import json
import os
import tarfile
import tempfile

import boto3
import sagemaker
from sagemaker.huggingface import HuggingFace

VERSIONS = {"transformers_version": "4.48.0", "pytorch_version": "2.3.0", "py_version": "py311"}
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ddp")
GROUP = "/aws/sagemaker/TrainingJobs"


def streams_of(name: str) -> dict[str, list[str]]:
    logs = boto3.client("logs")
    streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=name)["logStreams"]
    return {stream["logStreamName"]: [event["message"] for event in logs.get_log_events(
        logGroupName=GROUP, logStreamName=stream["logStreamName"])["events"]] for stream in streams}


def model_files(session: sagemaker.Session, model_data: str) -> dict[str, str]:
    bucket, key = model_data[len("s3://"):].split("/", 1)
    with tempfile.TemporaryDirectory() as folder:
        archive = os.path.join(folder, "model.tar.gz")
        session.boto_session.client("s3").download_file(bucket, key, archive)
        with tarfile.open(archive) as tar:
            names = tar.getnames()
            summary = json.load(tar.extractfile("training.json")) if "training.json" in names else {}
    return {"names": sorted(names), "summary": summary}


def main() -> None:
    session = sagemaker.Session()
    estimator = HuggingFace(entry_point="train.py", source_dir=SOURCE, instance_type="ml.p3.2xlarge",
                            instance_count=2, role=sagemaker.get_execution_role(),
                            distribution={"torch_distributed": {"enabled": True}},
                            hyperparameters={"steps": 5}, **VERSIONS)
    estimator.fit()
    name = estimator.latest_training_job.name
    described = session.sagemaker_client.describe_training_job(TrainingJobName=name)
    print("RESULT " + json.dumps({
        "status": described["TrainingJobStatus"], "instance_count": described["ResourceConfig"]["InstanceCount"],
        "streams": streams_of(name), "model": model_files(session, estimator.model_data),
    }), flush=True)


if __name__ == "__main__":
    main()
