"""How a transform job cuts input into requests and puts answers together, checked against the
service's documented examples (DataProcessing, BatchStrategy, SplitType, AssembleWith)."""

from __future__ import annotations

import json

import pytest

from sagetwin.aws.transform_records import (
    RecordError,
    apply_path,
    assemble,
    batches,
    check_path,
    filters_problem,
    join_input,
    split_records,
)


def test_lines_are_records_and_empty_lines_are_not():
    assert split_records(b'{"a": 1}\n\n{"a": 2}\n', "Line") == [b'{"a": 1}', b'{"a": 2}']
    assert split_records(b"whole object", "None") == [b"whole object"]
    with pytest.raises(RecordError, match="RecordIO is not emulated"):
        split_records(b"x", "RecordIO")


def test_multi_record_batches_fill_the_payload_and_single_record_sends_one_each():
    records = [b"x" * 400_000] * 6
    assert [len(b) for b in batches(records, "MultiRecord", 1)] == [2, 2, 2]  # 1 MB holds two of them
    assert [len(b) for b in batches(records, "SingleRecord", 1)] == [1] * 6
    with pytest.raises(RecordError, match="Too much data for max payload size"):
        list(batches([b"x" * (2 * 1024 * 1024)], "SingleRecord", 1))


def test_the_documented_filter_forms_apply_and_others_are_refused_at_create():
    assert apply_path(b"1,2,3,4,5,6,7", "$[0,5:]", "text/csv") == b"1,6,7"  # the service's own example
    assert apply_path(b"id,a,b\nid2,c,d", "$[1]", "text/csv") == b"a\nc"  # each row is an array
    assert json.loads(apply_path(b'{"id": 1, "features": [1, 2]}', "$.features", "application/json")) == [1, 2]
    assert json.loads(apply_path(b'{"id": 1, "f": 2, "x": 3}', "$['id','x']", "application/json")) == {"id": 1, "x": 3}
    for documented in ("$", "$[1:]", "$[-1]", "$[0,2]", "$.a.b", "$['id','SageMakerOutput']"):
        assert check_path(documented, "InputFilter") is None, documented
    assert "not a JSONPath the twin applies" in check_path("$[abc]", "InputFilter")
    assert "not a JSONPath the twin applies" in check_path("$..author", "OutputFilter")


def test_join_source_input_joins_as_the_service_does():
    assert json.loads(join_input(b'{"id": 1}', b'[{"label": "POS"}]', "application/json")) == {
        "id": 1, "SageMakerOutput": [{"label": "POS"}]}
    assert json.loads(join_input(b"[1, 2]", b"0.9", "application/json")) == {"SageMakerInput": [1, 2],
                                                                             "SageMakerOutput": 0.9}
    assert join_input(b"1,2\n", b"0.9\n", "text/csv") == b"1,2,0.9"


def test_answers_are_assembled_by_line_or_as_they_came():
    assert assemble([b"a", b"b\n"], "Line") == b"a\nb\n"
    assert assemble([b"a", b"b"], "None") == b"ab"


def test_filters_need_json_or_csv_records():
    assert "apply to JSON and CSV records" in filters_problem({"InputFilter": "$[1:]"}, "application/x-npy", "Line")
    assert filters_problem({"JoinSource": "Input"}, "application/json", "Line") is None
