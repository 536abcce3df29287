"""What syncing checkpoints costs a training job on the twin (`process` backend, `sagetwin aws` in
its own process): the same spot job — it writes a checkpoint of SIZE MB every INTERVAL seconds
while keeping a CPU core busy, COUNT times — with ``checkpoint_s3_uri`` (synced to the twin's S3
as it runs) and without (baseline), alternating, ROUNDS times each, in the same run.
Ratio = median job time with sync / without (target ≤ 1.05); job time is the service's
``TrainingTimeInSeconds`` and the client's wall time from CreateTrainingJob to Completed.

Usage: python bench/bench_checkpoints.py [--size-mb 100] [--interval 10] [--count 4] [--rounds 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

from bench_twin_guard import TwinProcess  # noqa: E402 - `sagetwin aws` in its own process, as a person runs it

IMAGE = ("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-training:2.3.0-transformers4.48.0-"
         "gpu-py311-cu121-ubuntu20.04")
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
SCRIPT = """\
import argparse, os, time
parser = argparse.ArgumentParser()
for name in ("output_dir", "size_mb", "interval", "count"):
    parser.add_argument("--" + name)
args, _ = parser.parse_known_args()
block = os.urandom(1024 * 1024)
for n in range(int(args.count)):
    folder = os.path.join(args.output_dir, f"checkpoint-{n}")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "model.bin"), "wb") as out:
        for _ in range(int(args.size_mb)):
            out.write(block)
    until = time.monotonic() + float(args.interval)
    while time.monotonic() < until:  # a busy core, as training keeps one
        sum(i * i for i in range(10000))
open(os.path.join(os.environ["SM_MODEL_DIR"], "done.txt"), "w").write("done")
"""


def job(sm, bucket: str, name: str, args: argparse.Namespace, checkpoints: bool) -> dict:
    request = {
        "TrainingJobName": name, "RoleArn": ROLE, "EnableManagedSpotTraining": True,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "HyperParameters": {"sagemaker_program": '"train.py"',
                            "sagemaker_submit_directory": json.dumps(f"s3://{bucket}/code/sourcedir.tar.gz"),
                            "output_dir": '"/opt/ml/checkpoints"', "size_mb": str(args.size_mb),
                            "interval": str(args.interval), "count": str(args.count)},
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/output"},
        "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 3600},
    }
    if checkpoints:
        request["CheckpointConfig"] = {"S3Uri": f"s3://{bucket}/checkpoints/{name}"}
    started = time.perf_counter()
    sm.create_training_job(**request)
    while (described := sm.describe_training_job(TrainingJobName=name))["TrainingJobStatus"] == "InProgress":
        time.sleep(0.2)
    wall = time.perf_counter() - started
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    return {"wall_s": round(wall, 2), "training_s": described["TrainingTimeInSeconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with TwinProcess() as twin:
        sm, s3 = twin.client("sagemaker"), twin.client("s3")
        bucket = "bench-checkpoints"
        s3.create_bucket(Bucket=bucket)
        code = io.BytesIO()
        with tarfile.open(fileobj=code, mode="w:gz") as tar:
            info = tarfile.TarInfo("train.py")
            info.size = len(SCRIPT)
            tar.addfile(info, io.BytesIO(SCRIPT.encode()))
        s3.put_object(Bucket=bucket, Key="code/sourcedir.tar.gz", Body=code.getvalue())
        runs: dict[str, list[dict]] = {"without": [], "with": []}
        for round_ in range(args.rounds):  # alternating, so both see the same machine
            for kind in ("without", "with"):
                runs[kind].append(job(sm, bucket, f"bench-{kind}-{round_}", args, checkpoints=kind == "with"))
        uploaded = s3.list_objects_v2(Bucket=bucket, Prefix=f"checkpoints/bench-with-{args.rounds - 1}/")["KeyCount"]
    median = {kind: statistics.median(r["wall_s"] for r in found) for kind, found in runs.items()}
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
              "checkpoint_mb": args.size_mb, "every_s": args.interval, "checkpoints": args.count, "runs": runs,
              "checkpoints_in_s3_last_run": uploaded, "median_wall_s": median,
              "ratio": round(median["with"] / median["without"], 3)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
