"""The embeddings container's contract (Text Embeddings Inference), emulated on `process`: an SDK
v2 TEI deployment through the twin (`sdk_workflow/embeddings_tei.py`) answers normalized
embeddings of the model's dimension, and TEI's limits and pooling are TEI's."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from sagetwin.emulation.router_server import RouterError
from sagetwin.emulation.tei import Embedder, pooling_of
from tests.test_aws_twin import exec_report
from tests.test_local_backend import no_leftover_containers, require_docker  # noqa: F401 - fixture

CELLS = Path(__file__).parent / "sdk_workflow" / "embeddings_tei.py"


@pytest.fixture(scope="module")
def minilm() -> Path:
    from sagetwin.guide.data import minilm_path

    return minilm_path()


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["process", pytest.param("local", marks=pytest.mark.docker)])
def test_a_tei_endpoint_deployed_with_the_sdk_answers_normalized_embeddings(backend, minilm, request):
    if backend == "local":
        require_docker()
        request.getfixturevalue("no_leftover_containers")
    report, _ = exec_report(backend, sys.executable, str(CELLS), str(minilm))
    assert report["image"].startswith("683313688378.dkr.ecr.us-east-1.amazonaws.com/tei:")
    [one] = report["one"]
    assert len(one) == 384 and abs(norm(one) - 1.0) < 1e-5
    cat, kitten, revenue = report["batch"]
    assert all(len(vector) == 384 and abs(norm(vector) - 1.0) < 1e-5 for vector in report["batch"])
    assert cosine(cat, kitten) > cosine(cat, revenue), "a real sentence model: related texts are closer"
    [raw] = report["raw"]
    assert abs(norm(raw) - 1.0) > 1e-3 and abs(cosine(raw, one) - 1.0) < 1e-5, "normalize=false: the same direction"
    assert report["too_many"]["code"] == "ModelError" and report["too_many"]["status"] == 413
    assert "batch size 33 > maximum allowed batch size 32" in report["too_many"]["message"]


def test_teis_own_errors_and_statuses(minilm):
    embedder = Embedder(str(minilm), {})
    for inputs, status, kind, words in [
        ("", 400, "Empty", "`inputs` cannot be empty"),
        (["fine", ""], 400, "Empty", "`inputs` cannot be empty"),
        ("word " * 600, 413, "Validation", "Input validation error: `inputs` must have less than 512 tokens. Given: "),
    ]:
        with pytest.raises(RouterError) as info:
            embedder.embed(inputs)
        assert (info.value.status, info.value.error_type) == (status, kind)
        assert info.value.message.startswith(words)
    assert len(embedder.embed("word " * 600, truncate=True)[0]) == 384, "truncate=true: embedded, cut to the limit"


def test_pooling_is_read_as_tei_reads_it(minilm, tmp_path):
    assert pooling_of(str(minilm), {}) == "mean"
    assert pooling_of(str(minilm), {"POOLING": "cls"}) == "cls"
    with pytest.raises(SystemExit, match="could not find a pooling configuration"):
        pooling_of(str(tmp_path), {})
    with pytest.raises(SystemExit, match="POOLING='splade' is not emulated"):
        pooling_of(str(minilm), {"POOLING": "splade"})


def test_the_tiny_embedding_model_the_project_builds_is_served_as_tei_serves_models():
    """Built offline (random BERT, its own WordPiece tokenizer, mean pooling in ``1_Pooling``) and
    loadable by the serving image's transformers 4.x (the class every version knows)."""
    import json as json_module

    from sagetwin.guide.tiny_embedder import WIDTH, tiny_embedding_model

    folder = tiny_embedding_model()
    assert json_module.loads((folder / "tokenizer_config.json").read_text())["tokenizer_class"] == \
        "PreTrainedTokenizerFast"
    assert pooling_of(str(folder), {}) == "mean"
    embedder = Embedder(str(folder), {})
    one, two = embedder.embed(["The quick brown fox.", "Every answer ends."])
    assert len(one) == len(two) == WIDTH and abs(norm(one) - 1.0) < 1e-5 and one != two
    with pytest.raises(RouterError, match="must have less than 128 tokens"):
        embedder.embed("fox " * 200)
