"""An LLM endpoint as SageMaker SDK v2 users write one: the TGI image from
``get_huggingface_llm_image_uri``, ``HuggingFaceModel(image_uri=..., env={"HF_MODEL_ID", "SM_NUM_GPUS",
"MAX_INPUT_TOKENS", "MAX_TOTAL_TOKENS"})``, ``deploy(..., "ml.g5.2xlarge",
container_startup_health_check_timeout=...)``, ``predict`` with parameters (twice greedy, with a
stop sequence), an over-long request, the Messages API; then the endpoint and model deleted.
Prints ``RESULT {json}``.

    python llm_tgi.py MODEL_FOLDER
"""

import json
import sys

import sagemaker
from botocore.exceptions import ClientError
from sagemaker.huggingface import HuggingFaceModel, get_huggingface_llm_image_uri

PROMPT = "The quick brown fox"


def main(model_folder: str) -> None:
    image = get_huggingface_llm_image_uri("huggingface", version="3.0.1")
    model = HuggingFaceModel(image_uri=image, role=sagemaker.get_execution_role(), env={
        "HF_MODEL_ID": model_folder, "SM_NUM_GPUS": "1", "MAX_INPUT_TOKENS": "64", "MAX_TOTAL_TOKENS": "96"})
    predictor = model.deploy(1, "ml.g5.2xlarge", container_startup_health_check_timeout=300)
    try:
        ask = {"inputs": PROMPT, "parameters": {"max_new_tokens": 12, "details": True}}
        first, second = predictor.predict(ask)[0], predictor.predict(ask)[0]
        texts = [token["text"] for token in first["details"]["tokens"]]
        stop = next(text.strip() for text in texts[2:] if text.strip())
        stopped = predictor.predict({"inputs": PROMPT, "parameters": {"max_new_tokens": 12, "stop": [stop]}})[0]
        try:
            predictor.predict({"inputs": PROMPT, "parameters": {"max_new_tokens": 200}})
            too_long = None
        except ClientError as exc:
            too_long = {"code": exc.response["Error"]["Code"], "message": exc.response["Error"]["Message"],
                        "status": exc.response.get("OriginalStatusCode")}
        chat = predictor.predict({"messages": [{"role": "user", "content": "What is SageMaker?"}], "max_tokens": 6})
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()
    print("\nRESULT " + json.dumps({"image": image, "first": first, "second": second, "stop": stop,
                                    "stopped": stopped, "too_long": too_long, "chat": chat}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
