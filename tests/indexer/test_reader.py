"""Reading JSONL, CSV and Parquet: bad records reported with file and line, valid ones kept."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indexer.reader import FieldMap, ReadReport, detect_format, read_records
from search.errors import BadRecord
from search.records import MAX_TEXT_CHARS

GOOD = {"id": "g1", "text": "hello there", "account_id": "a", "timestamp": "2026-11-20T10:00:00Z", "lang": "en"}


def jsonl_with_problems(tmp_path):
    lines = [
        json.dumps(GOOD).encode(),  # 1 ok
        b'{"id": "e", "text": "", "account_id": "a", "timestamp": 1}',  # 2 empty
        b"this is not json",  # 3
        b'{"id": "n", "text": "nul\\u0000byte", "account_id": "a", "timestamp": 1}',  # 4 NUL
        b'{"id": "t", "text": "hi", "account_id": "a", "timestamp": "next tuesday"}',  # 5 time
        b'{"id": "u", "text": "caf\xe9", "account_id": "a", "timestamp": 1}',  # 6 UTF-8
        b'{"id": 7, "text": ["list"], "account_id": "a", "timestamp": 1}',  # 7 type
        b'{"id": "s", "text": "lone \\ud800 surrogate", "account_id": "a", "timestamp": 1}',  # 8
        b"[1, 2]",  # 9 not object
        b'{"text": "no id", "account_id": "a", "timestamp": 1}',  # 10
        b'{"id": "z", "text": "\\u200b\\u200d  ", "account_id": "a", "timestamp": 1}',  # 11 invisible
        json.dumps({**GOOD, "id": "big", "text": "x" * (MAX_TEXT_CHARS + 1)}).encode(),  # 12 huge
        b"",  # 13 blank: ignored
        json.dumps({**GOOD, "id": 14, "timestamp": 1795168800}).encode(),  # 14 ok, int id
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_bad_jsonl_records_are_reported_with_lines_and_skipped(tmp_path):
    path = jsonl_with_problems(tmp_path)
    report = ReadReport()
    prompts = list(read_records([path], report))
    assert [p.id for p in prompts] == ["g1", "14"]
    assert prompts[0].metadata == {"lang": "en"} and prompts[0].timestamp == 1795168800.0
    assert prompts[1].timestamp == prompts[0].timestamp
    lines = {p.line: p.reason for p in report.problems}
    assert sorted(lines) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert lines[3].startswith("invalid JSON") and lines[6].startswith("invalid UTF-8")
    assert "NUL" in lines[4] and lines[5].startswith("bad timestamp") and lines[7].startswith("wrong type")
    assert "surrogate" in lines[8] and lines[10] == "missing id" and lines[12].startswith("text too long")
    assert all(p.source == str(path) for p in report.problems)
    assert (report.records, report.valid, report.skipped) == (13, 2, 11)


def test_strict_mode_stops_at_the_first_bad_record(tmp_path):
    path = jsonl_with_problems(tmp_path)
    with pytest.raises(BadRecord, match=r"in.jsonl:2: empty text"):
        list(read_records([path], ReadReport(), strict=True))


def test_csv_with_remapped_fields_and_bad_bytes(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(
        b"prompt_id,prompt,user,created,source\n"
        b'1,"multi\nline prompt",u1,2026-11-20 10:00:00,web\n'
        b"2,caf\xe9,u2,1795168800,api\n"
        b"3,fine prompt,u3,1795168800,api\n"
        b"4,no time,u4,,api\n"
    )
    report = ReadReport()
    fields = FieldMap(id="prompt_id", text="prompt", account_id="user", timestamp="created")
    prompts = list(read_records([path], report, fields=fields))
    assert [(p.id, p.text, p.metadata) for p in prompts] == [
        ("1", "multi\nline prompt", {"source": "web"}),
        ("3", "fine prompt", {"source": "api"}),
    ]
    assert [(p.line, p.reason.split(":")[0]) for p in report.problems] == [
        (4, "invalid UTF-8 in 'prompt' (undecodable bytes or a lone surrogate)"),
        (6, "bad timestamp"),
    ]


def test_parquet_and_gzip_jsonl(tmp_path):
    table = pa.table(
        {
            "id": ["a", "b", "c"],
            "text": ["one prompt", None, "three"],
            "account_id": ["x", "y", "z"],
            "timestamp": [1795168800, 1795168801, 1795168802],
            "extra": [1, 2, 3],
        }
    )
    pq.write_table(table, tmp_path / "in.parquet")
    with gzip.open(tmp_path / "in.jsonl.gz", "wt") as handle:
        handle.write(json.dumps(GOOD) + "\n")
    report = ReadReport()
    prompts = list(read_records([tmp_path / "in.parquet", tmp_path / "in.jsonl.gz"], report))
    assert [p.id for p in prompts] == ["a", "c", "g1"]
    assert prompts[0].metadata == {"extra": 1}
    assert [(p.line, p.reason) for p in report.problems] == [(2, "missing text: no 'text' field")]


def test_metadata_that_could_not_be_stored_and_served_back_is_reported_not_read(tmp_path):
    """Metadata too deep, too large or not JSON (NaN) is a bad row, like a bad timestamp: nothing of it is kept."""
    deep: dict = {}
    for _ in range(600):
        deep = {"a": deep}
    rows = [
        GOOD,
        {**GOOD, "id": "deep", "nested": deep},
        {**GOOD, "id": "huge", "blob": "x" * (70 * 1024)},
        {**GOOD, "id": "ok-16", "nested": {"a": {"b": [1, {"c": "fine"}]}}},
    ]
    path = tmp_path / "in.jsonl"
    lines = [json.dumps(r) for r in rows] + [json.dumps({**GOOD, "id": "nan"})[:-1] + ', "score": NaN}']
    path.write_text("\n".join(lines) + "\n")
    report = ReadReport()
    prompts = list(read_records([path], report))
    assert [p.id for p in prompts] == ["g1", "ok-16"]
    reasons = {p.line: p.reason for p in report.problems}
    assert sorted(reasons) == [2, 3, 5] and all(r.startswith("bad metadata: ") for r in reasons.values())
    assert "deeper than 16" in reasons[2] and "limit is 65536" in reasons[3] and "NaN" in reasons[5]


def test_format_detection():
    from pathlib import Path

    assert detect_format(Path("x.ndjson.gz")) == "jsonl" and detect_format(Path("y.PARQUET")) == "parquet"
    with pytest.raises(ValueError, match="--format"):
        detect_format(Path("logs.txt"))


# -- input as users have it (issue 19) ---------------------------------------------------------


def test_a_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    """Excel's "CSV UTF-8" starts with a BOM; it used to become part of the header ("\\ufeffid"): every row skipped."""
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "\ufeffid,text,account_id,timestamp\n1,hello there,a1,2026-11-20T10:00:00Z\n".encode()
        + b"2,again,a2,1795168800\n"
    )
    report = ReadReport()
    assert [p.id for p in read_records([path], report)] == ["1", "2"] and report.skipped == 0


def test_a_jsonl_with_a_byte_order_mark_reads_its_first_line(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    report = ReadReport()
    assert [p.id for p in read_records([path], report)] == ["g1"] and report.skipped == 0


def test_epoch_milliseconds_and_microseconds_are_read_without_being_told(tmp_path):
    rows = [{**GOOD, "id": f"r{n}", "timestamp": 1795168800 * 10**n} for n in (0, 3, 6, 9)]
    path = tmp_path / "units.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv_path = tmp_path / "units.csv"
    csv_path.write_text("id,text,account_id,timestamp\nc1,hi there,a,1795168800000\n")
    report = ReadReport()
    prompts = list(read_records([path, csv_path], report))
    assert [p.timestamp for p in prompts] == [1795168800.0] * 5 and report.skipped == 0


def test_an_explicit_time_unit_that_does_not_fit_is_reported_per_record(tmp_path):
    path = tmp_path / "ms.jsonl"
    path.write_text(json.dumps({**GOOD, "timestamp": 1795168800000}) + "\n")
    report = ReadReport()
    assert list(read_records([path], report, time_unit="s")) == []
    assert "read as seconds is out of range" in report.problems[0].reason and "--time-unit" in report.problems[0].reason


def test_metadata_is_the_metadata_object_joined_by_every_other_field(tmp_path):
    """One record contract for files, HTTP and the library: extra fields join `metadata`, never nest in it."""
    rows = [
        {**GOOD, "id": "m1", "metadata": {"lang": "de"}, "lang": None},  # a clash: which one is meant?
        {**GOOD, "id": "m2", "metadata": {"tier": "free"}},
        {"id": "m3", "text": "x y", "account_id": "a", "timestamp": 1, "metadata": "not an object"},
    ]
    path = tmp_path / "meta.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv_path = tmp_path / "meta.csv"
    csv_path.write_text('id,text,account_id,timestamp,metadata,source\nc1,hi there,a,1,"{""tier"": ""pro""}",web\n')
    report = ReadReport()
    prompts = {p.id: p.metadata for p in read_records([path, csv_path], report)}
    assert prompts == {"m2": {"tier": "free", "lang": "en"}, "c1": {"tier": "pro", "source": "web"}}
    reasons = [p.reason for p in report.problems]
    assert "'lang' given both as a field and inside 'metadata'" in reasons[0]
    assert "'metadata' must hold a JSON object, got 'not an object'" in reasons[1]
