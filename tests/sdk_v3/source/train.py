"""A training script as SageMaker SDK v3's ModelTrainer runs it (through its sm_drivers): it reads
its hyperparameters from the command line and writes its model to SM_MODEL_DIR."""

import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=1)
args, _ = parser.parse_known_args()
for step in range(1, args.steps + 1):
    print(f"v3 step {step} of {args.steps}", flush=True)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as out:
    json.dump({"steps": args.steps, "host": os.environ.get("SM_CURRENT_HOST")}, out)
