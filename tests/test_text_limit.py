"""One text limit (search.records.MAX_TEXT_CHARS), held alike by the file reader and the request contract."""

import json

import pytest

from indexer.reader import ReadReport, read_records
from promptsim.contract import search_request
from search.errors import InvalidRequest
from search.records import MAX_TEXT_CHARS


def test_the_request_contract_takes_the_limit_and_refuses_one_more():
    assert search_request({"text": "x" * MAX_TEXT_CHARS}).text == "x" * MAX_TEXT_CHARS
    with pytest.raises(InvalidRequest, match="text"):
        search_request({"text": "x" * (MAX_TEXT_CHARS + 1)})


def test_the_file_reader_takes_the_limit_and_refuses_one_more(tmp_path):
    source = tmp_path / "in.jsonl"
    sizes = (MAX_TEXT_CHARS, MAX_TEXT_CHARS + 1)
    rows = [{"id": f"p{n}", "text": "x" * k, "account_id": "a", "timestamp": 1763000000} for n, k in enumerate(sizes)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = ReadReport()
    assert [p.id for p in read_records([source], report)] == ["p0"]
    assert report.skipped == 1 and f"limit {MAX_TEXT_CHARS}" in report.problems[0].reason
