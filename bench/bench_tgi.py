"""TGI on `process`, in the same run: (1) tokens per second through the endpoint's ``/generate``
against transformers' ``generate`` on the same model and prompt in this process (greedy, so both
produce the same tokens); (2) the time to the first streamed token through the twin
(``InvokeEndpointWithResponseStream``) against the endpoint's own ``/generate_stream``. Rounds
alternate between the two sides of each measure; medians are reported.

Usage: python bench/bench_tgi.py [--rounds 15] [--tokens 128] [--json bench/results/tgi.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import sagetwin.aws  # noqa: E402
from sagetwin.guide.tiny_llm import tiny_causal_lm  # noqa: E402

PROMPT = "The quick brown fox jumps over the lazy dog. SageMaker endpoints answer prompts"


def post(port: int, path: str, body: dict, first_event: bool = False) -> tuple[float, bytes]:
    """Seconds to the whole answer (or to its first ``data:`` event), and what was read."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    answer = connection.getresponse()
    data = answer.readline() if first_event else answer.read()
    elapsed = time.perf_counter() - started
    if first_event:
        answer.read()  # the rest, so the server finishes the stream
    connection.close()
    return elapsed, data


def generate_rate(model, tokenizer, tokens: int) -> tuple[float, int]:
    import torch

    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=tokens, do_sample=False)
    produced = out.shape[1] - ids.shape[1]
    return produced / (time.perf_counter() - started), produced


def endpoint_rate(port: int, tokens: int) -> tuple[float, int]:
    elapsed, data = post(port, "/generate", {"inputs": PROMPT, "parameters": {"max_new_tokens": tokens,
                                                                             "details": True}})
    produced = json.loads(data)["details"]["generated_tokens"]
    return produced / elapsed, produced


def twin_first_token(runtime, name: str) -> float:
    body = json.dumps({"inputs": PROMPT, "parameters": {"max_new_tokens": 8}, "stream": True})
    started = time.perf_counter()
    answer = runtime.invoke_endpoint_with_response_stream(EndpointName=name, Body=body,
                                                          ContentType="application/json")
    first = None
    for event in answer["Body"]:
        if first is None and b"data:" in event["PayloadPart"]["Bytes"]:
            first = time.perf_counter() - started
    return first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "tgi.json"))
    args = parser.parse_args()
    import boto3
    import sagemaker
    from sagemaker.huggingface import HuggingFaceModel, get_huggingface_llm_image_uri
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_causal_lm(layers=4, width=256)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    with sagetwin.aws.start(backend="process", persist=False) as twin:
        image = get_huggingface_llm_image_uri("huggingface", version="3.0.1")
        predictor = HuggingFaceModel(image_uri=image, role=sagemaker.get_execution_role(), env={
            "HF_MODEL_ID": str(folder), "MAX_TOTAL_TOKENS": "512"}).deploy(1, "ml.g5.2xlarge")
        try:
            port = twin.endpoints.endpoints[predictor.endpoint_name].served.port  # the endpoint's own address
            runtime = boto3.client("sagemaker-runtime")
            generate_rate(model, tokenizer, 8), endpoint_rate(port, 8)  # warm-up: not counted
            rates = {"generate": [], "endpoint": []}
            firsts = {"own": [], "twin": []}
            for _ in range(args.rounds):
                rate, produced = generate_rate(model, tokenizer, args.tokens)
                rates["generate"].append(rate)
                rate, endpoint_produced = endpoint_rate(port, args.tokens)
                rates["endpoint"].append(rate)
                assert produced == endpoint_produced, (produced, endpoint_produced)
                firsts["own"].append(post(port, "/generate_stream", {"inputs": PROMPT, "parameters": {
                    "max_new_tokens": 8}}, first_event=True)[0])
                firsts["twin"].append(twin_first_token(runtime, predictor.endpoint_name))
        finally:
            predictor.delete_model()
            predictor.delete_endpoint()
    medians = {k: statistics.median(v) for k, v in {**rates, **firsts}.items()}
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "model": f"{folder.name} (GPT-2, random)",
              "rounds": args.rounds, "tokens": produced,
              "tokens_per_s": {"generate": round(medians["generate"], 1), "endpoint": round(medians["endpoint"], 1),
                               "ratio": round(medians["endpoint"] / medians["generate"], 3), "target": ">= 0.9"},
              "first_token_ms": {"own_generate_stream": round(medians["own"] * 1000, 2),
                                 "through_twin": round(medians["twin"] * 1000, 2),
                                 "added": round((medians["twin"] - medians["own"]) * 1000, 2), "target": "<= 20 ms"}}
    print(json.dumps(report, indent=2))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
