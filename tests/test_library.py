"""The public Python API: one import, offline defaults, typed and documented; its examples run here."""

import doctest
import inspect
import json
import re

import pytest

import promptsim
from promptsim import (
    IndexNotFound,
    InputRejected,
    InvalidRequest,
    PromptNotFound,
    add,
    dedup,
    delete,
    ingest,
    open_index,
    search,
    search_batch,
    stats,
)
from tests.api.conftest import campaign_rows
from tests.conftest import REPO, write_jsonl


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """An index made through the library from a JSONL file: background traffic and one campaign."""
    tmp = tmp_path_factory.mktemp("library")
    rows = campaign_rows()
    report = ingest(tmp / "idx", write_jsonl(tmp / "p.jsonl", rows))
    assert (report.added, report.read.skipped, report.index["prompts"]) == (190, 0, 190)
    return tmp / "idx", rows


def test_the_package_docstring_example_runs(tmp_path):
    finder = doctest.DocTestFinder()
    (test,) = [t for t in finder.find(promptsim) if t.name == "promptsim"]
    test.globs["path"] = tmp_path / "idx"
    result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test)
    assert result.failed == 0 and result.attempted >= 5


def test_the_readme_library_example_runs(tmp_path, monkeypatch, capsys):
    """The README's Python example, executed as written (from a folder holding its CSV)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- library example -->\s*```python\n(.*?)```", readme, re.DOTALL)
    assert block, "the README has a library example"
    csv_block = re.search(r"<!-- library example csv -->\s*```csv\n(.*?)```", readme, re.DOTALL)
    (tmp_path / "export.csv").write_text(csv_block.group(1), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {})
    printed = re.search(r"It prints:\n```\n(.*?)```", readme[block.end() :], re.DOTALL).group(1)
    assert capsys.readouterr().out == printed  # the output the README shows is the output


def test_every_public_name_is_documented_and_typed():
    for name in promptsim.__all__:
        obj = getattr(promptsim, name)
        assert inspect.getdoc(obj), name
        if inspect.isfunction(obj):
            signature = inspect.signature(obj)
            assert signature.return_annotation is not inspect.Signature.empty, name
            assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()), name


def test_search_answers_as_the_api_does(built):
    idx, rows = built
    with open_index(idx) as index:
        found = search(index, rows[160]["text"], k=5)
        assert [h.id for h in found.results][0] == rows[160]["id"] and found.verdict == "none"  # no dedup run yet
        assert found.summary.siblings == 40 and found.summary.accounts == 8
        longest = max(rows[150:], key=lambda r: len(r["text"]))
        cut = search(index, longest["text"], k=3)
        whole = search(index, longest["text"], k=3, full=True)
    assert cut.results[0].id == longest["id"] and len(longest["text"]) > 200
    # a preview is marked, never passed off as the whole prompt; full=True gives the whole prompt
    assert cut.results[0].truncated and cut.results[0].text == longest["text"][:200]
    assert not whole.results[0].truncated and whole.results[0].text == longest["text"]
    assert not any(h.truncated for h in cut.results if len(h.text) < 200)


def test_bad_requests_raise_what_the_api_answers_422(built):
    idx, _ = built
    with open_index(idx) as index:
        with pytest.raises(InvalidRequest, match="text: must hold at least one visible character"):
            search(index, " \n\t\u200b ")
        with pytest.raises(InvalidRequest, match="k: Input should be less than or equal to 1000"):
            search(index, "hello", k=5000)
        with pytest.raises(ValueError):  # InvalidRequest is a ValueError too
            search(index, "hello", since="last week")
        with pytest.raises(PromptNotFound, match="no stored prompt with id 'nope'"):
            search(index, prompt_id="nope")


def test_a_batch_reports_the_bad_query_and_answers_the_others(built):
    idx, rows = built
    with open_index(idx) as index:
        items = search_batch(index, [{"id": "a", "text": rows[0]["text"]}, {"text": "  "}, {"prompt_id": "nope"}])
    assert [i.query_id for i in items] == ["a", "2", "3"]
    assert items[0].results[0].id == rows[0]["id"]
    assert (items[1].error.status, items[1].error.code) == (422, "invalid_request")
    assert (items[2].error.status, items[2].error.code) == (404, "not_found")


def test_an_ingest_that_stores_nothing_raises_and_leaves_no_index(tmp_path):
    source = tmp_path / "wrong.csv"
    source.write_text("prompt_id,prompt,user,created\n1,hello there,u1,2026-11-20T10:00:00Z\n")
    with pytest.raises(InputRejected, match="--text-field prompt") as caught:
        ingest(tmp_path / "idx", source)
    assert caught.value.report.read.records == 1 and caught.value.report.added == 0
    assert not (tmp_path / "idx").exists()
    with pytest.raises(IndexNotFound, match="promptsim ingest"):
        open_index(tmp_path / "idx")


def test_records_in_memory_take_the_record_contract(tmp_path):
    report = add(
        tmp_path / "idx",
        [
            {"id": 1, "text": "first prompt here", "account_id": 42, "timestamp": 1795168800000, "lang": "en"},
            {"id": "2", "text": "   ", "account_id": "a", "timestamp": "2026-11-20 10:00:00"},
        ],
    )
    assert (report.added, report.read.skipped) == (1, 1) and "empty text" in report.read.problems[0].reason
    with open_index(tmp_path / "idx", with_model=False) as index:
        stored = index.store.fetch([index.store.row_of("1")]).popitem()[1]
    assert (stored.account_id, stored.timestamp, stored.metadata) == ("42", 1795168800.0, {"lang": "en"})
    assert stats(tmp_path / "idx").prompts == 1
    with pytest.raises(PromptNotFound):
        delete(tmp_path / "idx", ids=["nope"])
    assert delete(tmp_path / "idx", ids=["1", "nope"]).missing == ("nope",)


def test_dedup_finds_the_campaign(built):
    idx, rows = built
    run = dedup(idx)
    assert [set(c["members"]) for c in run.flagged] == [{r["id"] for r in rows[150:]}]
    assert json.dumps(run.clusters)  # the clusters.jsonl records: plain JSON
