"""Managed spot training cells, as a SageMaker SDK v2 user writes them: two spot jobs with one
checkpoint location, the second resuming from the first's newest checkpoint. Run through
``sagetwin exec --interrupt-spot '/saved checkpoint-3$/'`` the first is interrupted once and
completes from its checkpoint. Prints ``RESULT {json}`` with what each job's describe and log say.

    python spot_training.py
"""

import json
import os
import sys

import boto3
import sagemaker
from sagemaker.huggingface import HuggingFace

VERSIONS = {"transformers_version": "4.48.0", "pytorch_version": "2.3.0", "py_version": "py311"}
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resumable")


def job_log(name: str) -> list[str]:
    logs = boto3.client("logs")
    group = "/aws/sagemaker/TrainingJobs"
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=name)["logStreams"]
    return [event["message"] for stream in streams for event in logs.get_log_events(
        logGroupName=group, logStreamName=stream["logStreamName"])["events"]]


def main(steps: int) -> None:
    session = sagemaker.Session()
    checkpoints = f"s3://{session.default_bucket()}/spot/checkpoints"
    jobs = []
    for _ in range(2):
        estimator = HuggingFace(entry_point="train.py", source_dir=SOURCE, instance_type="ml.p3.2xlarge",
                                instance_count=1, role=sagemaker.get_execution_role(), use_spot_instances=True,
                                max_run=900, max_wait=1800, checkpoint_s3_uri=checkpoints,
                                hyperparameters={"output_dir": "/opt/ml/checkpoints", "steps": steps}, **VERSIONS)
        estimator.fit()
        name = estimator.latest_training_job.name
        described = session.sagemaker_client.describe_training_job(TrainingJobName=name)
        log = job_log(name)
        jobs.append({
            "status": described["TrainingJobStatus"],
            "transitions": [t["Status"] for t in described["SecondaryStatusTransitions"]],
            "billable": described["BillableTimeInSeconds"], "training": described["TrainingTimeInSeconds"],
            "resumed": [line for line in log if line.startswith("resuming from")],
            "sigterm": [line for line in log if line.startswith("received SIGTERM")],
            "saved": [int(line.rsplit("-", 1)[1]) for line in log if line.startswith("saved checkpoint-")],
            "model_data": estimator.model_data,
        })
        steps += 2
    print("RESULT " + json.dumps(jobs), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
