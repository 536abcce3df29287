"""Inference cells beyond the getting-started guide, as SageMaker SDK v2 users write them: a
model with its own ``code/inference.py``, a batch transform over JSON Lines, an asynchronous
endpoint, and a model named only by ``HF_MODEL_ID``. Nothing here knows about sagetwin: it runs
as is against AWS, and under ``sagetwin exec`` against the twin.

Usage: python inference_kinds.py CUSTOM_ARCHIVE PLAIN_ARCHIVE RECORDS_JSONL HUB_ID [--leave-queued]
(with --leave-queued it ends with an asynchronous endpoint, requests still queued on it, and a
transform job still running).
"""

import json
import sys

import sagemaker
from sagemaker.async_inference import AsyncInferenceConfig, WaiterConfig
from sagemaker.huggingface import HuggingFaceModel

VERSIONS = {"transformers_version": "4.48.0", "pytorch_version": "2.3.0", "py_version": "py311"}


def main(custom_archive: str, plain_archive: str, records: str, hub_id: str, *flags: str) -> None:
    sess = sagemaker.Session()
    role = sagemaker.get_execution_role()
    bucket = sess.default_bucket()
    custom_uri = sess.upload_data(custom_archive, key_prefix="kinds/custom")
    plain_uri = sess.upload_data(plain_archive, key_prefix="kinds/plain")
    result = {}

    if "--leave-queued" in flags:
        predictor = HuggingFaceModel(model_data=custom_uri, role=role, **VERSIONS).deploy(
            1, "ml.g4dn.xlarge", async_inference_config=AsyncInferenceConfig(output_path=f"s3://{bucket}/kinds/left"))
        for n in range(20):
            predictor.predict_async({"inputs": f"queued {n}", "sleep": 2})
        transformer = HuggingFaceModel(model_data=plain_uri, role=role, env={"HF_TASK": "text-classification"},
                                       **VERSIONS).transformer(1, "ml.p3.2xlarge", strategy="SingleRecord",
                                                               output_path=f"s3://{bucket}/left")
        transformer.transform(data=sess.upload_data(records, key_prefix="kinds/left-input"),
                              content_type="application/json", split_type="Line", wait=False)
        print("RESULT " + json.dumps({"endpoint": predictor.endpoint_name,
                                      "transform": transformer.latest_transform_job.name}), flush=True)
        return

    # a model.tar.gz with code/inference.py, deployed with no entry_point
    predictor = HuggingFaceModel(model_data=custom_uri, role=role, **VERSIONS).deploy(1, "ml.g4dn.xlarge")
    result["custom"] = predictor.predict({"inputs": "a custom handler"})
    predictor.delete_endpoint()

    # batch transform over a JSON Lines file, one record per request
    model = HuggingFaceModel(model_data=plain_uri, role=role, env={"HF_TASK": "text-classification"}, **VERSIONS)
    data = sess.upload_data(records, key_prefix="kinds/batch-input")
    output_path = f"s3://{bucket}/kinds/batch-output"
    transformer = model.transformer(1, "ml.p3.2xlarge", strategy="SingleRecord", output_path=output_path,
                                    assemble_with="Line", accept="application/json")
    transformer.transform(data=data, content_type="application/json", split_type="Line")
    transformer.wait()
    name = records.rsplit("/", 1)[-1]
    result["transform_output"] = sess.read_s3_file(bucket, f"kinds/batch-output/{name}.out")
    result["transform_status"] = sess.sagemaker_client.describe_transform_job(
        TransformJobName=transformer.latest_transform_job.name)["TransformJobStatus"]

    # an asynchronous endpoint
    output = f"s3://{bucket}/kinds/async-output"
    predictor = HuggingFaceModel(model_data=custom_uri, role=role, **VERSIONS).deploy(
        1, "ml.g4dn.xlarge", async_inference_config=AsyncInferenceConfig(output_path=output))
    response = predictor.predict_async({"inputs": "asynchronous"})
    result["async"] = response.get_result(WaiterConfig(max_attempts=120, delay=1))
    result["async_output_path"] = response.output_path
    result["async_predict"] = predictor.predict({"inputs": "waited for"}, waiter_config=WaiterConfig(120, 1))
    predictor.delete_endpoint()

    # a model named only by HF_MODEL_ID
    predictor = HuggingFaceModel(env={"HF_MODEL_ID": hub_id, "HF_TASK": "text-classification"}, role=role,
                                 **VERSIONS).deploy(1, "ml.g4dn.xlarge")
    result["hub"] = predictor.predict({"inputs": "named by its Hub id"})
    predictor.delete_endpoint()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
