"""A training script that resumes from its newest checkpoint, as people write for managed spot
training: it logs where it resumed from, each checkpoint it saved, and the SIGTERM it received."""

import argparse
import json
import os
import signal
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--output_dir")
parser.add_argument("--steps", type=int)
args, _ = parser.parse_known_args()
found = sorted((d for d in os.listdir(args.output_dir) if d.startswith("checkpoint-")), key=lambda d: int(d[11:]))
step = int(found[-1][11:]) if found else 0


def on_sigterm(signum, frame):
    print(f"received SIGTERM at step {step}", flush=True)
    sys.exit(143)


signal.signal(signal.SIGTERM, on_sigterm)
print(f"resuming from {found[-1] if found else 'nothing'}", flush=True)
while step < args.steps:
    step += 1
    folder = os.path.join(args.output_dir, f"checkpoint-{step}")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "trainer_state.json"), "w") as state:
        json.dump({"global_step": step}, state)
    print(f"saved checkpoint-{step}", flush=True)
    time.sleep(0.4)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "done.txt"), "w") as done:
    done.write(f"trained to step {step}")
