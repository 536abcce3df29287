"""A SageMaker v2 training script that trusts the container's paths: argparse defaults of the
literal /opt/ml folders (no hyperparameter overrides them), as many scripts are written."""

import argparse
import json
import os
import socket
import time

parser = argparse.ArgumentParser()
parser.add_argument("--model_dir", default="/opt/ml/model")
parser.add_argument("--config", default="/opt/ml/input/config/resourceconfig.json")
parser.add_argument("--marker", default="one")
parser.add_argument("--linger", type=float, default=0.0)
args, _ = parser.parse_known_args()

with open(os.path.join(args.model_dir, f"{args.marker}.txt"), "w") as out:
    out.write(args.marker)
time.sleep(args.linger)  # two jobs at once: each looks while the other has written
with open(args.config) as config:
    resources = json.load(config)
print("SEEN " + json.dumps({
    "model_files": sorted(os.listdir("/opt/ml/model")), "cwd": os.getcwd(), "hostname": socket.gethostname(),
    "algo-1": socket.gethostbyname("algo-1"), "current_host": resources["current_host"],
    "sm_model_dir": os.environ["SM_MODEL_DIR"], "sm_channel": os.environ.get("SM_CHANNEL_TRAIN"),
    "train_files": sorted(os.listdir("/opt/ml/input/data/train")),
}), flush=True)
