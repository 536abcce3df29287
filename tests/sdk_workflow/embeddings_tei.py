"""An embeddings endpoint as SageMaker SDK v2 users write one: the TEI image from
``get_huggingface_llm_image_uri("huggingface-tei")``, ``HuggingFaceModel(image_uri=...,
env={"HF_MODEL_ID": ...})``, ``deploy(1, "ml.g5.xlarge")``, ``predict`` on one text and on a batch,
unnormalized, and a batch over TEI's limit; then the endpoint and model deleted. Prints
``RESULT {json}``.

    python embeddings_tei.py MODEL_FOLDER
"""

import json
import sys

import sagemaker
from botocore.exceptions import ClientError
from sagemaker.huggingface import HuggingFaceModel, get_huggingface_llm_image_uri


def main(model_folder: str) -> None:
    image = get_huggingface_llm_image_uri("huggingface-tei")
    model = HuggingFaceModel(image_uri=image, role=sagemaker.get_execution_role(), env={"HF_MODEL_ID": model_folder})
    predictor = model.deploy(1, "ml.g5.xlarge")
    try:
        one = predictor.predict({"inputs": "SageMaker endpoints answer offline."})
        batch = predictor.predict({"inputs": ["A cat sat on the mat.", "A kitten sat on the rug.",
                                              "Quarterly revenue rose by four percent."]})
        raw = predictor.predict({"inputs": "SageMaker endpoints answer offline.", "normalize": False})
        try:
            predictor.predict({"inputs": ["text"] * 33})
            too_many = None
        except ClientError as exc:
            too_many = {"code": exc.response["Error"]["Code"], "status": exc.response.get("OriginalStatusCode"),
                        "message": exc.response["Error"]["Message"]}
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()
    print("\nRESULT " + json.dumps({"image": image, "one": one, "batch": batch, "raw": raw, "too_many": too_many}),
          flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
