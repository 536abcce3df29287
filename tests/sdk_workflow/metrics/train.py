"""Logs as the Hugging Face Trainer logs (train loss, then eval metrics) and leaves the model it
was given in its "model" channel as the trained model."""

import os
import shutil

for step, loss in enumerate([0.9, 0.7, 0.5], start=1):
    print(f"{{'loss': {loss}, 'learning_rate': 5e-05, 'epoch': {step / 3:.2f}}}", flush=True)
print("{'eval_loss': 0.45, 'eval_accuracy': 0.75, 'eval_f1': 0.7, 'epoch': 1.0}", flush=True)
model = os.environ["SM_CHANNEL_MODEL"]
for name in os.listdir(model):
    shutil.copy(os.path.join(model, name), os.environ["SM_MODEL_DIR"])
