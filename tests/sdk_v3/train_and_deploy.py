"""Train, deploy and predict with SageMaker SDK v3 as its users write it: ``ModelTrainer`` with the
Hugging Face training image from v3's ``image_uris``, then v3's resource classes ``Model`` →
``EndpointConfig`` → ``Endpoint`` with the Hugging Face inference image, ``invoke``, and the three
deleted. Prints ``RESULT {json}``.

    python train_and_deploy.py SOURCE_DIR MODEL_FOLDER   # MODEL_FOLDER: a small text classifier's files
"""

import json
import logging
import sys
import time

from sagemaker.core import image_uris
from sagemaker.core.helper.session_helper import Session, get_execution_role
from sagemaker.core.resources import Endpoint, EndpointConfig, Model
from sagemaker.core.shapes import ContainerDefinition, ProductionVariant
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, InputData, SourceCode

logging.basicConfig(level=logging.INFO, format="%(message)s")  # v3 logs the job's lines through logging
VERSIONS = {"version": "4.26", "base_framework_version": "pytorch1.13", "py_version": "py39"}


def train(session: Session, role: str, source_dir: str, model_uri: str) -> tuple[str, str]:
    image = image_uris.retrieve("huggingface", region=session.boto_region_name, instance_type="ml.p3.2xlarge",
                                image_scope="training", **VERSIONS)
    trainer = ModelTrainer(training_image=image, source_code=SourceCode(source_dir=source_dir, entry_script="train.py"),
                           compute=Compute(instance_type="ml.p3.2xlarge", instance_count=1),
                           hyperparameters={"epochs": 2}, role=role, sagemaker_session=session)
    trainer.train(input_data_config=[InputData(channel_name="model", data_source=model_uri)], wait=True, logs=True)
    job = trainer._latest_training_job
    return job.training_job_status, job.model_artifacts.s3_model_artifacts


def deploy_and_predict(session: Session, role: str, model_data: str) -> dict:
    image = image_uris.retrieve("huggingface", region=session.boto_region_name, instance_type="ml.g4dn.xlarge",
                                image_scope="inference", **VERSIONS)
    name = f"v3-classifier-{int(time.time())}"
    model = Model.create(model_name=name, execution_role_arn=role,
                         primary_container=ContainerDefinition(image=image, model_data_url=model_data))
    config = EndpointConfig.create(endpoint_config_name=name, production_variants=[ProductionVariant(
        variant_name="AllTraffic", model_name=name, instance_type="ml.g4dn.xlarge", initial_instance_count=1)])
    endpoint = Endpoint.create(endpoint_name=name, endpoint_config_name=name)
    try:
        endpoint.wait_for_status("InService")
        reply = endpoint.invoke(body=json.dumps({"inputs": "deployed with v3"}), content_type="application/json",
                                accept="application/json")
        return {"image": image, "status": endpoint.endpoint_status, "answer": json.loads(reply.body.read())}
    finally:
        endpoint.delete()
        config.delete()
        model.delete()


def main(source_dir: str, model_folder: str) -> None:
    session = Session()
    role = get_execution_role(session)
    model_uri = session.upload_data(model_folder, key_prefix="v3-train-and-deploy/model")
    status, model_data = train(session, role, source_dir, model_uri)
    print("\nRESULT " + json.dumps({"training_status": status, "model": model_data,
                                    **deploy_and_predict(session, role, model_data)}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
