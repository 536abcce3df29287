"""The getting-started guide's workflow as written against the SageMaker Python SDK v2, call for
call, for sagetwin's tests of the AWS twin. Nothing here knows about sagetwin: it runs as is
against AWS, and under ``sagetwin exec`` against the twin.

Usage: python guide_sdk.py MODEL_DIR TRAIN_DIR TEST_DIR SOURCE_DIR [ENTRY_POINT]
(the model and the tokenized datasets are local folders here, uploaded as the guide uploads its data).
"""

import json
import sys

import sagemaker
from datasets import load_from_disk
from sagemaker.huggingface import HuggingFace


def main(model_dir: str, train_dir: str, test_dir: str, source_dir: str, entry_point: str = "train.py") -> None:
    sess = sagemaker.Session()
    sagemaker_session_bucket = sess.default_bucket()
    role = sagemaker.get_execution_role()
    sess = sagemaker.Session(default_bucket=sagemaker_session_bucket)
    print(f"sagemaker role arn: {role}")
    print(f"sagemaker bucket: {sess.default_bucket()}")

    s3_prefix = "samples/datasets/imdb"
    training_input_path = f"s3://{sess.default_bucket()}/{s3_prefix}/train"
    test_input_path = f"s3://{sess.default_bucket()}/{s3_prefix}/test"
    load_from_disk(train_dir).save_to_disk(training_input_path)
    load_from_disk(test_dir).save_to_disk(test_input_path)
    model_input_path = sess.upload_data(model_dir, key_prefix="samples/models/tiny")

    hyperparameters = {"epochs": 1, "train_batch_size": 16, "model_name": "/opt/ml/input/data/model",
                       "max_steps": 4, "warmup_steps": 0}
    huggingface_estimator = HuggingFace(entry_point=entry_point, source_dir=source_dir,
                                        instance_type="ml.p3.2xlarge", instance_count=1, role=role,
                                        transformers_version="4.48.0", pytorch_version="2.3.0", py_version="py311",
                                        hyperparameters=hyperparameters)
    huggingface_estimator.fit({"train": training_input_path, "test": test_input_path, "model": model_input_path})

    predictor = huggingface_estimator.deploy(1, "ml.g4dn.xlarge")
    answer = predictor.predict({"inputs": "I love using the new Inference DLC."})
    job = sess.sagemaker_client.describe_training_job(TrainingJobName=huggingface_estimator.latest_training_job.name)
    predictor.delete_endpoint()
    print("RESULT " + json.dumps({
        "prediction": answer, "instance_type": job["ResourceConfig"]["InstanceType"],
        "training_image": job["AlgorithmSpecification"]["TrainingImage"], "status": job["TrainingJobStatus"],
        "model_data": huggingface_estimator.model_data, "endpoint": predictor.endpoint_name}))


if __name__ == "__main__":
    main(*sys.argv[1:])
