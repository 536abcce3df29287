"""Data the host prepared reads with the job's datasets: the old list feature name written back."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from sagetwin.emulation.datasets_compat import old_features, readable_by


def feature_types(folder: Path) -> set[str]:
    found: set[str] = set()

    def walk(value) -> None:
        if isinstance(value, dict):
            if "_type" in value:
                found.add(value["_type"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for file in folder.rglob("*.json"):
        walk(json.loads(file.read_text()))
    for file in folder.rglob("*.arrow"):
        with pa.memory_map(str(file)) as stream:
            walk(json.loads(pa.ipc.open_stream(stream).schema.metadata[b"huggingface"]))
    return found


def test_old_datasets_get_sequence_features_and_the_same_rows(sample_channels):
    import datasets

    train = Path(sample_channels["train"])
    assert "List" in feature_types(train)  # what this host's datasets writes
    assert readable_by(train, "4.0.0") == train  # datasets 4 and later read it as it is
    converted = readable_by(train, "2.9.0")
    assert converted != train and "List" not in feature_types(converted)
    assert "Sequence" in feature_types(converted)
    assert readable_by(train, "2.9.0") == converted  # cached
    original, copy = datasets.load_from_disk(str(train)), datasets.load_from_disk(str(converted))
    assert copy.num_rows == original.num_rows and copy[0]["input_ids"].tolist() == original[0]["input_ids"].tolist()


def test_nested_lists_are_converted_all_the_way_down():
    assert old_features({"a": {"_type": "List", "feature": {"_type": "List", "feature": {"_type": "Value"}}}}) == {
        "a": {"_type": "Sequence", "length": -1,
              "feature": {"_type": "Sequence", "length": -1, "feature": {"_type": "Value"}}}}
