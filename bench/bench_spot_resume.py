"""A spot job's restart after an interruption, against its own first start, in the same job: the
time from ``Starting`` to the first training step, fresh (the job's creation) and resumed (the
restart after the rehearsed interruption, which also copies the checkpoint back in from S3 and
has the Trainer load it: model, optimizer, scheduler, RNG states). Median of the rounds (target:
resumed <= 1.2x fresh).

The twin runs in this process (``sagetwin.aws.start(interrupt_spot=...)``) with the `process`
backend; the job is the bundled ``train_scripts/train.py`` on the tiny model, checkpointing every
5 steps into ``/opt/ml/checkpoints``, interrupted when it logs its first checkpoint.

Usage: python bench/bench_spot_resume.py [--rounds 3] [--json bench/results/spot_resume.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import sagetwin.aws  # noqa: E402
from sagetwin.guide.data import prepare_datasets, resolve_model  # noqa: E402

VERSIONS = {"transformers_version": "4.48.0", "pytorch_version": "2.3.0", "py_version": "py311"}
HYPERPARAMETERS = {"epochs": 1, "max_steps": 20, "train_batch_size": 16, "warmup_steps": 0, "logging_steps": 1,
                   "model_name": "/opt/ml/input/data/model", "checkpoint_dir": "/opt/ml/checkpoints",
                   "save_steps": 5}


def events(logs, job_name: str) -> list[tuple[float, str]]:
    group = "/aws/sagemaker/TrainingJobs"
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=job_name)["logStreams"]
    found = [(e["timestamp"] / 1000, e["message"]) for s in streams for e in logs.get_log_events(
        logGroupName=group, logStreamName=s["logStreamName"], startFromHead=True)["events"]]
    return sorted(found)


def one_job(session, role: str, inputs: dict[str, str], round_number: int) -> dict:
    from sagemaker.huggingface import HuggingFace

    estimator = HuggingFace(entry_point="train.py", source_dir=str(REPO / "train_scripts"),
                            instance_type="ml.p3.2xlarge", instance_count=1, role=role, sagemaker_session=session,
                            hyperparameters=HYPERPARAMETERS, use_spot_instances=True, max_run=900, max_wait=1800,
                            checkpoint_s3_uri=f"s3://{session.default_bucket()}/bench/spot-{round_number}-{os.getpid()}",
                            **VERSIONS)
    with contextlib.redirect_stdout(io.StringIO()):
        estimator.fit(inputs)
    name = estimator.latest_training_job.name
    described = session.sagemaker_client.describe_training_job(TrainingJobName=name)
    starts = [t["StartTime"].timestamp() for t in described["SecondaryStatusTransitions"] if t["Status"] == "Starting"]
    assert len(starts) == 2, f"the job was not interrupted once: {described['SecondaryStatusTransitions']}"
    lines = events(session.boto_session.client("logs"), name)
    resumed_at = next(at for at, text in lines if text.startswith("resuming from checkpoint-"))
    first_steps = [next(at for at, text in lines if text.startswith("step ") and at >= after)
                   for after in (starts[0], resumed_at)]  # the first run's first step; the restart's
    return {"job": name, "fresh_s": round(first_steps[0] - starts[0], 2),
            "resumed_s": round(first_steps[1] - starts[1], 2),
            "billable_s": described["BillableTimeInSeconds"], "training_s": described["TrainingTimeInSeconds"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "spot_resume.json"))
    args = parser.parse_args()
    model = resolve_model("tiny")
    channels = {**prepare_datasets("sample", model.tokenizer_source, train_size=320, test_size=64),
                **model.channels()}
    with sagetwin.aws.start(backend="process", persist=False, interrupt_spot="/^saved checkpoint-/"):
        import sagemaker

        session = sagemaker.Session()
        role = sagemaker.get_execution_role()
        inputs = {name: session.upload_data(path, key_prefix=f"bench/{name}") for name, path in channels.items()}
        jobs = [one_job(session, role, inputs, n) for n in range(args.rounds)]
    fresh = statistics.median(j["fresh_s"] for j in jobs)
    resumed = statistics.median(j["resumed_s"] for j in jobs)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "jobs": jobs,
              "fresh_to_first_step_s": fresh, "resumed_to_first_step_s": resumed,
              "ratio": round(resumed / fresh, 3), "target": "<= 1.2"}
    print(json.dumps(report, indent=2))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
