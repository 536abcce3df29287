"""Fit and deploy with the SageMaker SDK without waiting, and print every Create* request the SDK
sent (operation and parameters, as JSON). Run against moto alone and against the twin, the two
lists must match: the twin answers like the service, so the SDK asks the same.

Usage: python create_requests.py SOURCE_DIR
"""

import json
import sys

import sagemaker
from sagemaker.huggingface import HuggingFace, HuggingFaceModel

VERSIONS = {"transformers_version": "4.48.0", "pytorch_version": "2.3.0", "py_version": "py311"}


def main(source_dir: str) -> None:
    session = sagemaker.Session()
    sent = []

    def record(params, model, **kwargs):
        if model.name.startswith("Create"):
            sent.append({"operation": model.name, "params": params})

    session.sagemaker_client.meta.events.register("provide-client-params.sagemaker.*", record)
    bucket = session.default_bucket()
    role = sagemaker.get_execution_role()
    estimator = HuggingFace(entry_point="train.py", source_dir=source_dir, instance_type="ml.p3.2xlarge",
                            instance_count=1, role=role, hyperparameters={"epochs": 1, "model_name": "tiny"},
                            sagemaker_session=session, **VERSIONS)
    estimator.fit({"train": f"s3://{bucket}/data/train"}, wait=False, job_name="same-code-job")
    model = HuggingFaceModel(model_data=f"s3://{bucket}/models/model.tar.gz", role=role, sagemaker_session=session,
                             name="same-code-model", **VERSIONS)
    model.deploy(1, "ml.g4dn.xlarge", endpoint_name="same-code-endpoint", wait=False)
    print("REQUESTS " + json.dumps(sent, default=str, sort_keys=True))


if __name__ == "__main__":
    main(*sys.argv[1:])
