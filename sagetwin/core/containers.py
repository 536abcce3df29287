"""Which Hugging Face serving container an image URI names, and so which contract serves the
model: the inference toolkit (the Hugging Face inference DLC), Text Generation Inference (the LLM
container, ``huggingface-pytorch-tgi-inference``) or Text Embeddings Inference (``tei`` /
``tei-cpu``). Backends read it from ``DeploySpec.server``."""

from __future__ import annotations

import re

# huggingface-pytorch-tgi-inference:2.4.0-tgi3.0.1-gpu-py311-cu124-ubuntu22.04[-v2.1]
TGI = re.compile(r"(?:^|/)huggingface-pytorch-tgi-inference:(?P<pytorch>\d+(?:\.\d+)+)-tgi(?P<tgi>\d+(?:\.\d+)+)-")
# tei:2.0.1-tei1.8.2-gpu-py310-cu122-ubuntu22.04 (and tei-cpu, huggingface-tei*)
TEI = re.compile(r"(?:^|/)(?:huggingface-)?tei(?:-cpu)?:(?P<pytorch>\d+(?:\.\d+)+)-tei(?P<tei>\d+(?:\.\d+)+)-")
# the URIs the SDK's get_huggingface_llm_image_uri gives in us-east-1, for `sagetwin serve --tgi / --tei`
TGI_IMAGE = ("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-tgi-inference:"
             "2.4.0-tgi3.0.1-gpu-py311-cu124-ubuntu22.04-v2.1")
TEI_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/tei-cpu:2.0.1-tei1.8.2-cpu-py310-ubuntu22.04"
EXAMPLES = {"inference-toolkit": {"inputs": "I love this movie!"},
            "tgi": {"inputs": "What is SageMaker?", "parameters": {"max_new_tokens": 32}},
            "tei": {"inputs": ["What is SageMaker?"]}}


def server_version(image: str | None) -> str | None:
    """The TGI or TEI version ``image`` names (None for other images)."""
    tgi, tei = TGI.search(image or ""), TEI.search(image or "")
    return tgi.group("tgi") if tgi else tei.group("tei") if tei else None


def server_of(image: str | None) -> str:
    """``"tgi"``, ``"tei"`` or ``"inference-toolkit"`` for ``image`` (None: the inference DLC)."""
    return "tgi" if TGI.search(image or "") else "tei" if TEI.search(image or "") else "inference-toolkit"
