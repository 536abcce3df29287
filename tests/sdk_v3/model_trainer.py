"""Training with SageMaker SDK v3 as its users write it: ``ModelTrainer`` with the Hugging Face
training image from v3's ``image_uris``, ``SourceCode`` and ``Compute``, ``train(wait=True,
logs=True)``. Prints ``RESULT {json}`` with the job's status and model location.

    python model_trainer.py SOURCE_DIR
"""

import json
import logging
import sys

from sagemaker.core import image_uris
from sagemaker.core.helper.session_helper import Session, get_execution_role
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, SourceCode

logging.basicConfig(level=logging.INFO, format="%(message)s")  # v3 logs the job's lines through logging


def main(source_dir: str) -> None:
    session = Session()
    image = image_uris.retrieve("huggingface", region=session.boto_region_name, version="4.26",
                                base_framework_version="pytorch1.13", py_version="py39",
                                instance_type="ml.p3.2xlarge", image_scope="training")
    trainer = ModelTrainer(training_image=image, source_code=SourceCode(source_dir=source_dir, entry_script="train.py"),
                           compute=Compute(instance_type="ml.p3.2xlarge", instance_count=1),
                           hyperparameters={"steps": 3}, role=get_execution_role(session), sagemaker_session=session)
    trainer.train(wait=True, logs=True)
    job = trainer._latest_training_job
    print("\nRESULT " + json.dumps({"status": job.training_job_status, "image": image,
                                    "model": job.model_artifacts.s3_model_artifacts}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
