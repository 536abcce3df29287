"""The training cells after the first notebook, as a SageMaker SDK v2 user writes them:
``metric_definitions`` → ``TrainingJobAnalytics(...).dataframe()``, then ``HuggingFace.attach(name)``
→ ``deploy`` → ``predict`` → ``delete_endpoint``. Prints ``RESULT {json}``.

    python attach_and_metrics.py MODEL_FOLDER   # a small text classifier's files
"""

import json
import os
import sys

import sagemaker
from sagemaker.analytics import TrainingJobAnalytics
from sagemaker.huggingface import HuggingFace

VERSIONS = {"transformers_version": "4.48.0", "pytorch_version": "2.3.0", "py_version": "py311"}
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics")
METRICS = [{"Name": "loss", "Regex": r"'loss': ([0-9.]+)"},
           {"Name": "eval_loss", "Regex": r"'eval_loss': ([0-9.]+)"},
           {"Name": "eval_accuracy", "Regex": r"'eval_accuracy': ([0-9.]+)"},
           {"Name": "eval_f1", "Regex": r"'eval_f1': ([0-9.]+)"}]


def main(model_folder: str) -> None:
    session = sagemaker.Session()
    model_uri = session.upload_data(model_folder, key_prefix="attach-and-metrics/model")
    estimator = HuggingFace(entry_point="train.py", source_dir=SOURCE, instance_type="ml.p3.2xlarge",
                            instance_count=1, role=sagemaker.get_execution_role(), metric_definitions=METRICS,
                            **VERSIONS)
    estimator.fit({"model": model_uri})
    name = estimator.latest_training_job.name
    frame = TrainingJobAnalytics(name).dataframe()
    attached = HuggingFace.attach(name)
    predictor = attached.deploy(1, "ml.g4dn.xlarge")
    try:
        answer = predictor.predict({"inputs": "attached and deployed"})
    finally:
        predictor.delete_endpoint()
    print("\nRESULT " + json.dumps({  # on a line of its own: deploy() ends its progress line without one
        "metrics": sorted(set(frame.metric_name)),
        "eval_accuracy": frame[frame.metric_name == "eval_accuracy"].value.tolist(),
        "same_model": attached.model_data == estimator.model_data, "answer": answer,
    }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
