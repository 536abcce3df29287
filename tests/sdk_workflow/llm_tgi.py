"""An LLM endpoint as SageMaker SDK v2 users write one: the TGI image from
``get_huggingface_llm_image_uri``, ``HuggingFaceModel(image_uri=..., env={"HF_MODEL_ID", "SM_NUM_GPUS",
"MAX_INPUT_TOKENS", "MAX_TOTAL_TOKENS"})``, ``deploy(..., "ml.g5.2xlarge",
container_startup_health_check_timeout=...)``, ``predict`` with parameters (twice greedy, with a
stop sequence), an over-long request, the Messages API, the answer streamed token by token
(``predict_stream`` and boto3's ``invoke_endpoint_with_response_stream``); then the endpoint and
model deleted. Then the same model as a fine-tune is deployed: ``model_data`` in S3 with
``HF_MODEL_ID=/opt/ml/model``, as a ``model.tar.gz`` and uncompressed (``S3DataSource`` of
``CompressionType: None``); and once without ``HF_MODEL_ID``, which the container refuses.
Prints ``RESULT {json}``.

    python llm_tgi.py MODEL_FOLDER
"""

import json
import sys
import tarfile
import tempfile
from pathlib import Path

import boto3
import sagemaker
from botocore.exceptions import ClientError
from sagemaker.huggingface import HuggingFaceModel, get_huggingface_llm_image_uri
from sagemaker.iterators import LineIterator

PROMPT = "The quick brown fox"


def main(model_folder: str) -> None:
    image = get_huggingface_llm_image_uri("huggingface", version="3.0.1")
    model = HuggingFaceModel(image_uri=image, role=sagemaker.get_execution_role(), env={
        "HF_MODEL_ID": model_folder, "SM_NUM_GPUS": "1", "MAX_INPUT_TOKENS": "64", "MAX_TOTAL_TOKENS": "96"})
    predictor = model.deploy(1, "ml.g5.2xlarge", container_startup_health_check_timeout=300)
    try:
        default = predictor.predict({"inputs": PROMPT, "parameters": {"max_new_tokens": 4}})[0]["generated_text"]
        ask = {"inputs": PROMPT, "parameters": {"max_new_tokens": 12, "details": True, "return_full_text": False}}
        first, second = predictor.predict(ask)[0], predictor.predict(ask)[0]
        texts = [token["text"] for token in first["details"]["tokens"]]
        stop = next(text.strip() for text in texts[2:] if text.strip())
        stopped = predictor.predict({"inputs": PROMPT, "parameters": {"max_new_tokens": 12, "stop": [stop],
                                                                      "return_full_text": False}})[0]
        try:
            predictor.predict({"inputs": PROMPT, "parameters": {"max_new_tokens": 200}})
            too_long = None
        except ClientError as exc:
            too_long = {"code": exc.response["Error"]["Code"], "message": exc.response["Error"]["Message"],
                        "status": exc.response.get("OriginalStatusCode")}
        chat = predictor.predict({"messages": [{"role": "user", "content": "What is SageMaker?"}], "max_tokens": 6,
                                  "temperature": 0})
        streamed = stream_tokens(predictor, {"inputs": PROMPT, "parameters": {"max_new_tokens": 12}, "stream": True})
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()
    fine_tuned, unset = from_model_data(image, model_folder, ask)
    print("\nRESULT " + json.dumps({"image": image, "default": default, "first": first, "second": second, "stop": stop,
                                    "stopped": stopped, "too_long": too_long, "chat": chat, "streamed": streamed,
                                    "fine_tuned": fine_tuned, "unset": unset}), flush=True)


def from_model_data(image: str, model_folder: str, ask: dict) -> tuple[dict, str]:
    """The model packed as a training job leaves it, uploaded, and served from ``/opt/ml/model``;
    then the same model_data without ``HF_MODEL_ID``: the deploy's error."""
    session = sagemaker.Session()
    with tempfile.TemporaryDirectory() as folder:
        with tarfile.open(Path(folder) / "model.tar.gz", "w:gz") as archive:
            for path in Path(model_folder).iterdir():
                archive.add(path, arcname=path.name)
        model_data = session.upload_data(str(Path(folder) / "model.tar.gz"), key_prefix="llm-fine-tune")
    model = HuggingFaceModel(image_uri=image, model_data=model_data, role=sagemaker.get_execution_role(),
                             env={"HF_MODEL_ID": "/opt/ml/model", "MAX_INPUT_TOKENS": "64", "MAX_TOTAL_TOKENS": "96"})
    predictor = model.deploy(1, "ml.g5.2xlarge")
    try:
        answer = predictor.predict(ask)[0]
        chat = predictor.predict({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()
    prefix = f"s3://{session.default_bucket()}/llm-uncompressed/"
    for path in Path(model_folder).iterdir():
        session.upload_data(str(path), key_prefix="llm-uncompressed")
    uncompressed = HuggingFaceModel(image_uri=image, role=sagemaker.get_execution_role(), model_data={
        "S3DataSource": {"S3Uri": prefix, "S3DataType": "S3Prefix", "CompressionType": "None"}},
        env={"HF_MODEL_ID": "/opt/ml/model", "MAX_INPUT_TOKENS": "64", "MAX_TOTAL_TOKENS": "96"})
    predictor = uncompressed.deploy(1, "ml.g5.2xlarge")
    try:
        from_prefix = predictor.predict(ask)[0]
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()
    unset = HuggingFaceModel(image_uri=image, model_data=model_data, role=sagemaker.get_execution_role())
    try:
        unset.deploy(1, "ml.g5.2xlarge")
        refused = ""
    except Exception as exc:  # the SDK's UnexpectedStatusException, with the endpoint's FailureReason
        refused = str(exc)
    finally:
        unset.delete_model()
        session.delete_endpoint(unset.endpoint_name)
        session.delete_endpoint_config(unset.endpoint_name)
    return {"answer": answer, "model": chat["model"], "uncompressed": from_prefix}, refused


def stream_tokens(predictor, request: dict) -> dict:
    """The answer read token by token, twice: with the SDK's ``predict_stream`` and ``LineIterator``,
    and with boto3's ``invoke_endpoint_with_response_stream``, lines split from its PayloadParts."""
    by_sdk = [json.loads(line[5:])["token"] for line in predictor.predict_stream(request, iterator=LineIterator)
              if line.startswith(b"data:")]
    answer = boto3.client("sagemaker-runtime").invoke_endpoint_with_response_stream(
        EndpointName=predictor.endpoint_name, Body=json.dumps(request), ContentType="application/json")
    buffer, by_boto3 = b"", []
    for event in answer["Body"]:
        buffer += event["PayloadPart"]["Bytes"]
        *lines, buffer = buffer.split(b"\n")
        by_boto3 += [json.loads(line[5:])["token"] for line in lines if line.startswith(b"data:")]
    return {"sdk": "".join(t["text"] for t in by_sdk if not t["special"]), "tokens": len(by_sdk),
            "boto3": "".join(t["text"] for t in by_boto3 if not t["special"]),
            "content_type": answer["ContentType"]}


if __name__ == "__main__":
    main(sys.argv[1])
