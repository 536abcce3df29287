"""Dataset and model preparation: sample data, local files, tiny model, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sagetwin.core.errors import ConfigurationError
from sagetwin.guide import data, sample_data


def test_sample_data_is_balanced_reproducible_and_varied():
    records = sample_data.generate_records(200, seed=1)
    assert records == sample_data.generate_records(200, seed=1)
    assert sum(r["label"] for r in records) == 100
    assert len({r["text"] for r in records}) > 190
    long = sample_data.generate_records(400, seed=2, profile="imdb")
    words = sorted(len(str(r["text"]).split()) for r in long)
    median = words[len(words) // 2]
    assert 120 < median < 320, median  # IMDb-like: ~230 tokens at the median, long tail
    assert words[-1] > 400


def test_tiny_model_builds_offline_and_is_cached(tmp_path: Path):
    path = data.build_tiny_model(tmp_path / "tiny")
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "NEGATIVE", "1": "POSITIVE"}
    assert (path / "vocab.txt").is_file()
    mtime = (path / "config.json").stat().st_mtime_ns
    assert data.build_tiny_model(tmp_path / "tiny") == path
    assert (path / "config.json").stat().st_mtime_ns == mtime


def test_resolve_model_kinds(tmp_path: Path):
    tiny = data.resolve_model("tiny", cache_dir=tmp_path)
    assert tiny.hyperparameter == "/opt/ml/input/data/model" and tiny.channels() == {"model": str(tiny.local_path)}
    hub = data.resolve_model("distilbert-base-uncased")
    assert hub.hyperparameter == "distilbert-base-uncased" and hub.channels() == {}
    local = data.resolve_model(str(tiny.local_path))
    assert local.local_path == tiny.local_path
    with pytest.raises(ConfigurationError, match="does not exist"):
        data.resolve_model("./no/such/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match="no config.json"):
        data.resolve_model(str(tmp_path / "empty"))


def test_minilm_is_a_real_pretrained_model():
    path = data.minilm_path()
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "bert" and config["hidden_size"] == 384
    assert (path / "model.safetensors").stat().st_size > 10_000_000


def test_prepare_from_a_csv_file_splits_and_tokenizes(tmp_path: Path, tiny_model):
    csv = tmp_path / "reviews.csv"
    rows = ["text,label"] + [f"\"a {'great' if i % 2 else 'dull'} film{' really' * (i % 7)}\",{i % 2}"
                             for i in range(50)]
    csv.write_text("\n".join(rows) + "\n")
    channels = data.prepare_datasets(str(csv), tiny_model.tokenizer_source, out_dir=tmp_path / "prepared")
    import datasets

    train = datasets.load_from_disk(channels["train"])
    test = datasets.load_from_disk(channels["test"])
    assert len(train) == 40 and len(test) == 10
    assert {"input_ids", "attention_mask", "labels"} <= set(train.column_names)
    assert "text" not in train.column_names
    assert train.format["type"] == "torch"
    lengths = {len(x) for x in train.with_format(None)["input_ids"]}
    assert len(lengths) > 1  # not padded to one length: batches are padded dynamically


def test_pad_to_max_length_reproduces_the_guide(tmp_path: Path, tiny_model):
    channels = data.prepare_datasets("sample", tiny_model.tokenizer_source, out_dir=tmp_path / "padded",
                                     train_size=8, test_size=4, pad_to_max_length=True)
    import datasets

    lengths = {len(x) for x in datasets.load_from_disk(channels["train"]).with_format(None)["input_ids"]}
    assert lengths == {512}


def test_dataset_errors_name_the_problem(tmp_path: Path, tiny_model):
    with pytest.raises(ConfigurationError, match="neither 'sample', 'imdb' nor an existing path"):
        data.load_raw_dataset("nonsense")
    bad = tmp_path / "bad.csv"
    bad.write_text("review,stars\nok,1\nbad,0\nfine,1\nmeh,0\nyes,1\n")
    with pytest.raises(ConfigurationError, match=r"lacks column\(s\) \['label', 'text'\]"):
        data.load_raw_dataset(str(bad))
    odd = tmp_path / "data.xml"
    odd.write_text("<x/>")
    with pytest.raises(ConfigurationError, match="unsupported extension"):
        data.load_raw_dataset(str(odd))


def test_imdb_uses_the_hub_and_explains_when_offline(monkeypatch):
    import datasets

    calls = []

    def offline_load(name, **kwargs):
        calls.append((name, kwargs))
        raise ConnectionError("Couldn't reach the Hugging Face Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline_load)
    with pytest.raises(ConfigurationError, match="could not load the IMDb dataset") as info:
        data.load_raw_dataset("imdb")
    assert calls == [("imdb", {"split": ["train", "test"]})]
    assert "--dataset sample" in info.value.fix
