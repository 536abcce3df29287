"""A fine-tune kept to what a deployment needs, as SageMaker runs it (through SDK v3's sm_drivers,
or the training toolkit for a job made with the AWS CLI): it reads its hyperparameters from the
command line and saves the text classifier of its ``model`` channel to the container's literal
/opt/ml/model, as many scripts write it."""

import argparse
import shutil

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--model_dir", default="/opt/ml/model")
args, _ = parser.parse_known_args()
for epoch in range(1, args.epochs + 1):
    print(f"epoch {epoch} of {args.epochs}", flush=True)
shutil.copytree("/opt/ml/input/data/model", args.model_dir, dirs_exist_ok=True)
print(f"model saved to {args.model_dir}", flush=True)
