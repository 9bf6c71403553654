"""Verdicts and the watchlist over HTTP and in the UI (TestClient; fake index encoder, real family encoder).

The index holds real background traffic and two campaigns written for this test; one dedup run
flags both. Everything after that happens without another dedup run: a confirmed family's next
prompt is recognised at ingest by the watchlist alone.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from api import output
from api.app import create_app
from api.keys import KeyStore
from api.settings import Settings
from indexer.campaigns import nightly
from indexer.service import IndexService
from search.engine import SearchFilters
from search.family_encoder import load_family_encoder
from search.index import PromptIndex
from search.records import Prompt
from tests.conftest import FakeEncoder, background_texts

DAY = 86_400.0
T0 = 1_795_000_000.0
HARVEST = "Think carefully and lay out each step of your reasoning in order before you state the final answer."
# The same instruction reworded: no lexical signal (MinHash, head/tail windows) links it to the campaign.
REWORDED = (
    "Think it through carefully, laying out every step of your reasoning in order, "
    "and only then state your final answer."
)
PERSONA = "Act as a senior specialist: answer the question below in depth and justify every point you make."
ORIGIN = {"origin": "http://testserver"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    path = tmp_path_factory.mktemp("triage") / "idx"
    texts = iter(background_texts(1200))
    prompts = [Prompt(f"bg{i}", next(texts), f"user{i % 90}", T0 + DAY * 14 * (i / 400)) for i in range(400)]
    for name, wrapper, start in (("harvest", HARVEST, 2), ("persona", PERSONA, 6)):
        for i in range(60):
            account, t = f"{name}-{i % 20}", T0 + DAY * (start + 1.5 * (i / 60))
            prompts.append(Prompt(f"{name}{i}", f"{wrapper}\n\n{next(texts)}", account, t))
    with PromptIndex.open(path, FakeEncoder(512), writable=True, create=True) as index:
        index.upsert(prompts, index.signals([p.text for p in prompts]))
        index.checkpoint()
        clusters, _ = nightly(index, family_encoder=load_family_encoder())
    flagged = {c["template"][:20]: c["cluster_id"] for c in clusters if c["flagged"]}
    store = KeyStore(path / "keys.json")
    keys = {
        "triage": store.create("alice", ["read", "triage"], rate=1000),
        "read": store.create("reader", ["read"], rate=1000),
        "write": store.create("ingester", ["write"], rate=1000),
    }
    harvest = next(cid for head, cid in flagged.items() if head.startswith("think carefully"))
    persona = next(cid for head, cid in flagged.items() if head.startswith("act as a senior"))
    return path, keys, harvest, persona, texts


@pytest.fixture(scope="module")
def client(env):
    path = env[0]
    settings = Settings(path, anonymous_rate=1000, anonymous_burst=1000)
    with TestClient(create_app(settings, encoder=FakeEncoder(512))) as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ingest(client: TestClient, key: str, pid: str, text: str, account: str) -> dict:
    body = {"prompts": [{"id": pid, "text": text, "account_id": account, "timestamp": T0 + 20 * DAY}]}
    response = client.post("/v1/prompts", json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()["results"][0]


def test_a_confirmed_familys_fresh_prompt_is_a_campaign_at_ingest_before_any_dedup_run(client, env):
    path, keys, harvest, _, texts = env
    before = ingest(client, keys["write"], "fresh-0", f"{REWORDED}\n\n{next(texts)}", "newcomer-0")
    assert before["watch"] is None and before["near_campaign"] is None and before["verdict"] == "none"

    response = client.post(
        f"/v1/clusters/{harvest}/verdict",
        json={"verdict": "confirmed", "note": "reasoning-trace harvesting"},
        headers=auth(keys["triage"]),
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["verdict"] == "confirmed" and made["by"] == "alice" and made["cluster_id"] == harvest
    assert made["note"] == "reasoning-trace harvesting" and made["at"].endswith("Z") and made["size"] == 60

    after = ingest(client, keys["write"], "fresh-1", f"{REWORDED}\n\n{next(texts)}", "newcomer-1")
    assert after["verdict"] == "campaign" and after["near_campaign"] is None  # the watchlist alone knew it
    watch = after["watch"]
    assert watch["watch_id"] == made["family_id"] and watch["verdict_id"] == made["verdict_id"]
    assert 0.85 <= watch["similarity"] <= 1.0 and watch["confirmed_by"] == "alice" and watch["cluster_id"] == harvest

    found = client.post("/v1/search", json={"text": f"{REWORDED}\n\n{next(texts)}"}, headers=auth(keys["read"]))
    assert found.json()["verdict"] == "campaign" and found.json()["watch"]["watch_id"] == made["family_id"]
    unrelated = ingest(client, keys["write"], "plain-0", next(texts), "newcomer-2")
    assert unrelated["verdict"] == "none" and unrelated["watch"] is None


def test_the_cli_table_shows_the_confirmed_family_a_text_matches(client, env, capsys):
    """After the verdict above: the terminal's answer names the watch entry, as HTTP does."""
    path, _, _, _, texts = env
    service = IndexService(path, FakeEncoder(512))
    try:
        (answer,) = service.search([f"{REWORDED}\n\n{next(texts)}"], [None], 5, 0.0, SearchFilters())
    finally:
        service.close()
    output.search_answer(answer, REWORDED)
    shown = " ".join(capsys.readouterr().out.split())
    assert answer.watch is not None and answer.verdict == "campaign"
    assert f"watch: {answer.watch.watch_id}" in shown and "confirmed by alice" in shown
    assert f"it matches confirmed family {answer.watch.watch_id}" in shown


def test_accounts_newly_seen_in_a_watched_family_are_listed(client, env):
    _, keys, _, _, _ = env
    (entry,) = client.get("/v1/watchlist", headers=auth(keys["read"])).json()["entries"]
    assert entry["confirmed_by"] == "alice" and entry["forms"] >= 1 and 0.62 <= entry["threshold"] <= 0.95
    assert entry["new_accounts"] >= 1 and entry["accounts_at_verdict"] == 20
    url = f"/v1/watchlist/{entry['watch_id']}/accounts"
    listed = client.get(url, headers=auth(keys["read"])).json()
    assert listed["watch_id"] == entry["watch_id"]
    assert [a["account_id"] for a in listed["accounts"]] == ["newcomer-1"]  # fresh-0 came before the verdict
    assert listed["accounts"][0]["source"] == "ingest"
    later = client.get(url, params={"since": "2990-01-01T00:00:00Z"}, headers=auth(keys["read"])).json()
    assert later["accounts"] == []
    missing = client.get("/v1/watchlist/f-none/accounts", headers=auth(keys["read"]))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_verdicts_need_the_triage_scope_a_real_cluster_and_a_note(client, env):
    _, keys, _, persona, _ = env
    body = {"verdict": "dismissed", "note": "partner eval"}
    assert client.post(f"/v1/clusters/{persona}/verdict", json=body, headers=auth(keys["read"])).status_code == 403
    missing = client.post("/v1/clusters/c-none/verdict", json=body, headers=auth(keys["triage"]))
    assert missing.status_code == 404 and "c-none" in missing.json()["error"]["message"]
    for bad in ({"verdict": "dismissed", "note": "   "}, {"verdict": "benign", "note": "x"}, {"verdict": "confirmed"}):
        refused = client.post(f"/v1/clusters/{persona}/verdict", json=bad, headers=auth(keys["triage"]))
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_request", bad


def test_verdicts_are_listed_and_audited_with_who_when_why(client, env):
    path, keys, harvest, _, _ = env
    listed = client.get("/v1/verdicts", params={"cluster_id": harvest}, headers=auth(keys["read"])).json()
    assert [v["verdict"] for v in listed["verdicts"]] == ["confirmed"] and listed["next_cursor"] is None
    entries = [json.loads(line) for line in (path / "audit.jsonl").read_text().splitlines()]
    audited = [e for e in entries if e["endpoint"] == "POST /v1/clusters/{id}/verdict"]
    assert audited and audited[-1]["key_name"] == "alice" and audited[-1]["query"]["cluster_id"] == harvest
    assert "reasoning" not in json.dumps(audited[-1])  # the note is kept as its digest, the text in triage.sqlite
    metrics = client.get("/metrics", headers=auth(keys["read"])).text
    assert 'promptsim_verdicts_total{verdict="confirmed"} 1.0' in metrics
    assert 'promptsim_watchlist_hits_total{source="ingest"} 1.0' in metrics
    assert 'promptsim_watchlist_hits_total{source="search"} 1.0' in metrics


def test_the_campaign_page_records_a_verdict_from_its_buttons(client, env):
    _, keys, _, persona, _ = env
    ui, reader = TestClient(client.app), TestClient(client.app)  # two browsers on the running app
    signed_in = ui.post("/login", data={"key": keys["triage"]}, headers=ORIGIN, follow_redirects=False)
    assert signed_in.status_code == 303
    page = ui.get(f"/campaigns/{persona}").text
    assert 'value="dismissed"' in page and 'value="confirmed"' in page and "No verdict yet." in page
    form = {"verdict": "dismissed", "note": "partner eval harness"}
    foreign = ui.post(f"/campaigns/{persona}/verdict", data=form, headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    done = ui.post(f"/campaigns/{persona}/verdict", data=form, headers=ORIGIN, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/campaigns/{persona}"
    assert "Dismissed by alice" in ui.get(f"/campaigns/{persona}").text
    blank = ui.post(f"/campaigns/{persona}/verdict", data={"verdict": "dismissed", "note": ""}, headers=ORIGIN)
    assert blank.status_code == 422 and "needs a note" in blank.text
    reader.post("/login", data={"key": keys["read"]}, headers=ORIGIN)
    assert 'value="dismissed"' not in reader.get(f"/campaigns/{persona}").text
    assert reader.post(f"/campaigns/{persona}/verdict", data=form, headers=ORIGIN).status_code == 403


def test_erasing_an_account_takes_it_off_the_watchlist_too(client, env):
    _, keys, _, _, _ = env
    (entry,) = client.get("/v1/watchlist", headers=auth(keys["read"])).json()["entries"]
    url = f"/v1/watchlist/{entry['watch_id']}/accounts"
    assert [a["account_id"] for a in client.get(url, headers=auth(keys["read"])).json()["accounts"]] == ["newcomer-1"]
    assert client.delete("/v1/accounts/newcomer-1/prompts", headers=auth(keys["write"])).json() == {"deleted": 1}
    assert client.get(url, headers=auth(keys["read"])).json()["accounts"] == []
