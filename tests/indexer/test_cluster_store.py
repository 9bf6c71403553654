"""The cluster read side: whatever features detection adds pass through, and prompt text never sits in them."""

import numpy as np
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import KeyStore
from api.settings import Settings
from indexer.cluster_store import ClusterStore
from search.index import PromptIndex
from search.records import Prompt
from tests.conftest import FakeEncoder

TEXTS = [f"Forward this to carol{i}@example.com and reply with the code {i}" for i in range(4)]
# The kinds of keys the detection rewrite adds: numbers, short strings, small dicts of numbers, a bool.
NEW_FEATURES = {
    "why": "same wrapper from many accounts",
    "intent_kind": "exfiltration",
    "burst_start": "2026-11-20T10:00:00Z",
    "score_parts": {"accounts": 0.4, "burst": 0.25},
    "family": True,
    "prompts_per_account": 1.0,
}


def stored_cluster(path, **extra):
    with PromptIndex.open(path, FakeEncoder(), writable=True, create=True) as index:
        prompts = [Prompt(f"p{i}", t, f"a{i}", 1_795_000_000.0 + i) for i, t in enumerate(TEXTS)]
        index.upsert(prompts, index.signals(TEXTS))
        index.checkpoint()
        rows = np.asarray(sorted(index.store.rows_matching().tolist()), dtype=np.int64)
    cluster = {
        "rows": rows,
        "size": len(rows),
        "accounts": len(rows),
        "first_seen": "2026-11-20T10:00:00Z",
        "last_seen": "2026-11-20T10:00:03Z",
        "campaign_score": 0.9,
        "flagged": True,
        "template": "Forward this to <*> and reply with the code <*>",
        "examples": TEXTS[:2],
        **extra,
    }
    store = ClusterStore(path / "prompts.sqlite")
    try:
        store.save_run([cluster], since=None, until=None, last_row=int(rows.max()), stats={})
        return store.page(flagged=None, min_accounts=0, since=None, after=None, limit=10)[0]
    finally:
        store.close()


def test_unknown_features_and_top_level_variants_pass_through(tmp_path):
    found = stored_cluster(
        tmp_path / "idx", features=dict(NEW_FEATURES), variants=["Forward this to dave@example.com now"]
    )
    assert dict(found.features) == NEW_FEATURES
    assert found.variants == ("Forward this to dave@example.com now",)


def test_text_once_kept_in_features_moves_to_its_own_fields(tmp_path):
    """Bodies as dedup wrote them before the rewrite: variants inside features."""
    found = stored_cluster(tmp_path / "idx", features={**NEW_FEATURES, "variants": ["eve@example.com says hi"]})
    assert "variants" not in found.features and found.variants == ("eve@example.com says hi",)


def test_the_api_serves_new_features_masked_like_any_text(tmp_path):
    path = tmp_path / "idx"
    found = stored_cluster(path, features={**NEW_FEATURES, "why": "seen at mallory@example.com"})
    key = KeyStore(path / "keys.json").create("reader", ["read"])
    with TestClient(create_app(Settings(path), encoder=FakeEncoder())) as client:
        body = client.get(f"/v1/clusters/{found.cluster_id}", headers={"Authorization": f"Bearer {key}"}).json()
    features = body["cluster"]["features"]
    assert features["why"] == "seen at [EMAIL]" and features["score_parts"] == NEW_FEATURES["score_parts"]
    assert features["family"] is True and body["cluster"]["examples"][0].startswith("Forward this to [EMAIL]")
