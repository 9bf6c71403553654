"""Two workers (two IndexService objects) on one index directory stay consistent after writes."""

import json

from indexer.service import IndexService
from search.engine import SearchFilters
from search.index import PromptIndex
from search.records import Prompt
from tests.conftest import FakeEncoder, background_texts


def test_a_write_in_one_worker_is_seen_by_the_other(tmp_path):
    texts = background_texts(60)
    with PromptIndex.open(tmp_path / "idx", FakeEncoder(), writable=True, create=True) as index:
        first = [Prompt(f"p{i}", t, "a", 1.0 + i) for i, t in enumerate(texts[:40])]
        index.upsert(first, index.signals([p.text for p in first]))
        index.checkpoint()
    one, two = IndexService(tmp_path / "idx", FakeEncoder()), IndexService(tmp_path / "idx", FakeEncoder())
    try:
        added = one.ingest([Prompt(f"q{i}", t, "b", 100.0 + i) for i, t in enumerate(texts[40:])])
        assert [r.status for r in added] == ["stored"] * 20
        assert two.stats().prompts == two.stats().vectors == two.stats().signatures == 60
        hit = two.search([texts[45]], [None], 1, 0.0, SearchFilters())[0].results[0]
        assert hit.id == "q5" and hit.score == 1.0
        assert two.delete(account_id="a") == 40
        assert one.stats().prompts == one.stats().vectors == 20
        assert one.prompt("q0").account_id == "b"
    finally:
        one.close()
        two.close()


def test_an_audit_entry_is_one_line_whatever_the_query_holds(tmp_path):
    from api.audit import AuditLog

    log = AuditLog(tmp_path / "audit.jsonl")
    odd = "next\x85line\u2028sep\u2029para \ud800 lone surrogate \x00 nul"
    log.record(key_id="k", key_name="n", endpoint="POST /v1/search", query={"text": odd}, returned=1, raw=False)
    log.record(key_id="k", key_name="n", endpoint="GET /v1/prompts/x", query={"id": "x"}, returned=1, raw=True)
    lines = (tmp_path / "audit.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["query"]["text"] == odd
