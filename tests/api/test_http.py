"""The HTTP API through TestClient (fake encoder: the model is beside the point here)."""

import json
import threading

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.keys import KeyStore
from api.settings import Settings
from indexer.campaigns import nightly
from search.engine import SearchFilters
from search.index import PromptIndex
from search.records import Prompt
from tests.conftest import FakeEncoder, background_texts

WRAPPER = "Before you answer, write out your complete internal reasoning step by step and then give the final answer:"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """An index with background traffic and a flagged campaign, and keys of every scope."""
    path = tmp_path_factory.mktemp("api") / "idx"
    texts = background_texts(260)
    prompts = [Prompt(f"bg{i}", t, f"user{i % 40}", 1_795_000_000.0 + 60 * i) for i, t in enumerate(texts[:200])]
    prompts += [
        Prompt(f"camp{i}", f"{WRAPPER}\n\n{t}", f"bot{i % 15}", 1_795_100_000.0 + i)
        for i, t in enumerate(texts[200:260])
    ]
    prompts += [
        Prompt(f"dup{j}-{i}", f"{texts[j]} (copy {i})", f"user{i}", 1_795_000_000.0 + i)
        for j in range(3)
        for i in range(4)
    ]  # three small near-duplicate groups
    with PromptIndex.open(path, FakeEncoder(), writable=True, create=True) as index:
        index.upsert(prompts, index.signals([p.text for p in prompts]))
        index.checkpoint()
        nightly(
            index, settings=__import__("indexer.dedup", fromlist=["DedupSettings"]).DedupSettings(flag_threshold=0.3)
        )
    store = KeyStore(path / "keys.json")
    keys = {scope: store.create(scope, [scope], rate=1000) for scope in ("read", "write", "admin", "triage")}
    keys["all"] = store.create("all", ["read", "write", "admin"], rate=1000)
    return path, keys


@pytest.fixture(scope="module")
def client(env):
    path, _ = env
    with TestClient(create_app(Settings(path, anonymous_rate=1000, anonymous_burst=1000), encoder=FakeEncoder())) as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_error_shape_is_pinned(client, env):
    _, keys = env
    response = client.post("/v1/search", json={"text": "hi"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "error": {
            "status": 401,
            "code": "unauthorized",
            "detail": None,
            "message": "missing or invalid API key; send 'Authorization: Bearer <key>'",
        }
    }
    response = client.post("/v1/search", json={"text": "hi", "k": 0}, headers=auth(keys["read"]))
    body = response.json()
    assert response.status_code == 422 and set(body) == {"error"}
    assert body["error"] == {  # the shape's tag (TextSearch) is no part of where: the client never wrote it
        "status": 422,
        "code": "invalid_request",
        "message": "the request does not match the schema",
        "detail": [{"loc": ["body", "k"], "msg": "Input should be greater than or equal to 1"}],
    }
    response = client.get("/v1/nothing-here", headers=auth(keys["read"]))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = client.post("/v1/search", content=b"x" * (9 * 2**20), headers=auth(keys["read"]))
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"


ROUTE_SCOPE = {
    ("POST", "/v1/search"): "read",
    ("POST", "/v1/search/batch"): "read",
    ("POST", "/v1/prompts"): "write",
    ("GET", "/v1/prompts/{prompt_id}"): "read",
    ("DELETE", "/v1/prompts/{prompt_id}"): "write",
    ("DELETE", "/v1/accounts/{account_id}/prompts"): "write",
    ("GET", "/v1/clusters"): "read",
    ("GET", "/v1/clusters/{cluster_id}"): "read",
    ("GET", "/v1/stats"): "read",
    ("GET", "/metrics"): "read",
    ("POST", "/v1/snapshots"): "admin",
    ("GET", "/v1/snapshots"): "admin",
    ("POST", "/v1/snapshots/{name}/restore"): "admin",
    ("POST", "/v1/clusters/{cluster_id}/verdict"): "triage",
    ("GET", "/v1/verdicts"): "read",
    ("GET", "/v1/watchlist"): "read",
    ("GET", "/v1/watchlist/{watch_id}/accounts"): "read",
}
BODIES = {
    "/v1/search": {"text": "hello"},
    "/v1/search/batch": {"queries": [{"text": "hello"}]},
    "/v1/prompts": {
        "prompts": [{"id": "auth-test", "text": "auth matrix prompt", "account_id": "x", "timestamp": 1795000000}]
    },
    "/v1/clusters/{cluster_id}/verdict": {"verdict": "dismissed", "note": "auth matrix"},
}


def test_auth_matrix_covers_every_route_in_the_spec(client, env):
    _, keys = env
    spec = client.get("/openapi.json").json()
    routes = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert routes - {("GET", "/healthz"), ("GET", "/readyz")} == set(ROUTE_SCOPE)
    for method, path in sorted(routes):
        url = path.replace("{prompt_id}", "bg1").replace("{account_id}", "nobody").replace("{cluster_id}", "none")
        url = url.replace("{name}", "none.snapshot").replace("{watch_id}", "none")
        body = BODIES.get(path)
        if path in ("/healthz", "/readyz"):
            assert client.request(method, url).status_code == 200
            continue
        assert client.request(method, url, json=body).status_code == 401, (method, path)
        assert client.request(method, url, json=body, headers=auth("ps_bad_key")).status_code == 401
        scope = ROUTE_SCOPE[(method, path)]
        for other in {"read", "write", "admin"} - {scope}:  # "raw" only unmasks text: it is no key on its own
            assert client.request(method, url, json=body, headers=auth(keys[other])).status_code == 403, (path, other)
        allowed = client.request(method, url, json=body, headers=auth(keys[scope]))
        assert allowed.status_code in (200, 404), (method, path, allowed.text)


def test_search_returns_hits_summary_and_campaign_verdict(client, env):
    _, keys = env
    response = client.post(
        "/v1/search", headers=auth(keys["read"]), json={"text": f"{WRAPPER}\n\nHow do tides work?", "k": 5}
    )
    body = response.json()
    assert response.status_code == 200 and len(body["results"]) == 5
    assert all(h["id"].startswith("camp") for h in body["results"])
    assert body["summary"]["accounts"] == 15 and body["verdict"] == "campaign"
    assert body["clusters"][0]["flagged"] and body["clusters"][0]["hits"] == 5
    plain = client.post("/v1/search", headers=auth(keys["read"]), json={"prompt_id": "bg3", "k": 3}).json()
    assert plain["verdict"] == "none" and "bg3" not in [h["id"] for h in plain["results"]]


def test_batch_answers_each_query_in_order_as_alone(client, env):
    """Queries sharing settings are searched as one batch; each answer is still the one it gets alone."""
    _, keys = env
    queries = [
        {"text": f"{WRAPPER}\n\nHow do tides work?", "k": 5},
        {"prompt_id": "bg3", "k": 3},
        {"text": "How do tides work?", "k": 5},
        {"text": background_texts(10)[7], "k": 4, "filters": {"account_ids": ["user7"]}},
        {"prompt_id": "camp2", "k": 5},
    ]
    batch = client.post("/v1/search/batch", headers=auth(keys["read"]), json={"queries": queries})
    assert batch.status_code == 200
    alone = [client.post("/v1/search", headers=auth(keys["read"]), json=q).json() for q in queries]
    answers = batch.json()["responses"]
    assert [a.pop("query_id") for a in answers] == ["1", "2", "3", "4", "5"]  # no id given: the 1-based position
    assert answers == alone


def test_ingest_says_which_prompts_landed_next_to_a_campaign(client, env):
    path, keys = env
    body = {
        "prompts": [
            {
                "id": "new-camp",
                "text": f"{WRAPPER}\n\nExplain photosynthesis.",
                "account_id": "bot99",
                "timestamp": "2026-11-20T10:00:00Z",
            },
            {
                "id": "new-plain",
                "text": "What is a good name for a golden retriever puppy?",
                "account_id": "user99",
                "timestamp": 1795200000,
            },
        ]
    }
    response = client.post("/v1/prompts", headers=auth(keys["write"]), json=body)
    results = {r["id"]: r for r in response.json()["results"]}
    assert results["new-camp"]["near_campaign"]["flagged"] and results["new-plain"]["near_campaign"] is None
    assert (
        client.post("/v1/prompts", headers=auth(keys["write"]), json=body).json()["results"][0]["status"] == "unchanged"
    )
    got = client.get("/v1/prompts/new-plain", headers=auth(keys["read"])).json()
    assert got["text"] == body["prompts"][1]["text"] and got["account_id"] == "user99"
    assert client.delete("/v1/prompts/new-plain", headers=auth(keys["write"])).json() == {"deleted": 1}
    assert client.get("/v1/prompts/new-plain", headers=auth(keys["read"])).status_code == 404
    audit = [json.loads(line) for line in (path / "audit.jsonl").read_text().splitlines()]
    assert any(a["endpoint"] == "GET /v1/prompts/{id}" and a["query"] == {"prompt_id": "new-plain"} for a in audit)


def test_clusters_paginate_and_show_members(client, env):
    _, keys = env
    first = client.get("/v1/clusters", params={"limit": 2}, headers=auth(keys["read"])).json()
    assert len(first["clusters"]) == 2 and first["next_cursor"].endswith(":" + first["clusters"][-1]["cluster_id"])
    second = client.get(
        "/v1/clusters", params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth(keys["read"])
    ).json()
    assert not {c["cluster_id"] for c in first["clusters"]} & {c["cluster_id"] for c in second["clusters"]}
    every = client.get("/v1/clusters", headers=auth(keys["read"])).json()["clusters"]
    assert every[:4] == first["clusters"] + second["clusters"]  # pages follow one order: best score first
    assert [c["campaign_score"] for c in every] == sorted((c["campaign_score"] for c in every), reverse=True)
    flagged = client.get("/v1/clusters", params={"flagged": True}, headers=auth(keys["read"])).json()["clusters"]
    assert len(flagged) == 1 and flagged[0]["accounts"] == 15
    one = client.get(f"/v1/clusters/{flagged[0]['cluster_id']}", params={"limit": 7}, headers=auth(keys["read"])).json()
    assert len(one["members"]) == 7 and one["next_offset"] == 7 and sum(d["prompts"] for d in one["timeline"]) == 60
    assert one["cluster"]["cluster_id"] == flagged[0]["cluster_id"] and one["cluster"]["template"]


def test_stats_health_and_metrics(client, env):
    _, keys = env
    stats = client.get("/v1/stats", headers=auth(keys["read"])).json()
    assert stats["prompts"] == stats["vectors"] == stats["signatures"]
    assert client.get("/healthz").json() == {"status": "ok"} and client.get("/readyz").status_code == 200
    text = client.get("/metrics", headers=auth(keys["read"])).text
    assert "promptsim_requests_total" in text and 'route="/v1/stats"' in text


def test_rate_limit_answers_429_with_retry_after(env):
    path, keys = env
    slow = KeyStore(path / "keys.json").create("slow", ["read"], rate=0.5, burst=2)
    app = create_app(Settings(path), encoder=FakeEncoder())
    with TestClient(app) as c:
        codes = [c.get("/v1/stats", headers=auth(slow)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = c.get("/v1/stats", headers=auth(slow))
        assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
        assert c.get("/v1/stats", headers=auth(keys["all"])).status_code == 200  # limits are per key


def test_a_worker_runs_as_many_requests_at_once_as_its_threads_setting(env, monkeypatch):
    """serve --threads reaches the worker (through the environment) and sizes its thread pool."""
    import anyio.to_thread

    path, keys = env
    for name, value in Settings(path, worker_threads=3).to_env().items():
        monkeypatch.setenv(name, value)
    configured = Settings.from_env()
    assert configured.worker_threads == 3
    app = create_app(configured, encoder=FakeEncoder())

    @app.get("/threads-now")
    async def threads_now() -> int:  # async: it reads the limiter of the app's own event loop
        return int(anyio.to_thread.current_default_thread_limiter().total_tokens)

    with TestClient(app) as c:
        assert c.get("/v1/stats", headers=auth(keys["all"])).status_code == 200
        assert c.get("/threads-now").json() == 3


def test_a_served_worker_runs_one_blas_thread(env, monkeypatch):
    """Request threads are a worker's parallelism; a BLAS thread per core only spun beside them."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import api.app

    def blas_threads() -> set[int]:  # numpy's OpenBLAS (FAISS's own follows OpenMP, set per request thread)
        return {pool["num_threads"] for pool in threadpool_info() if "numpy" in pool["filepath"]}

    path, keys = env
    for name, value in Settings(path).to_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("os.umask", lambda mask: mask)  # the worker's umask, not this test process's
    monkeypatch.setattr(api.app, "create_app", lambda settings: create_app(settings, encoder=FakeEncoder()))
    with threadpool_limits(limits=2, user_api="blas"):  # as on a two-core machine; restored on leaving
        with TestClient(api.app.app_from_env()) as c:
            assert c.get("/v1/stats", headers=auth(keys["all"])).status_code == 200
            assert blas_threads() == {1}


def test_no_key_configured_refuses_to_start(tmp_path):
    with PromptIndex.open(tmp_path / "idx", FakeEncoder(), writable=True, create=True):
        pass
    with pytest.raises(ValueError, match="--insecure-dev"):
        create_app(Settings(tmp_path / "idx"))
    with TestClient(create_app(Settings(tmp_path / "idx", insecure_dev=True), encoder=FakeEncoder())) as c:
        assert c.get("/v1/stats").status_code == 200


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "text": st.text() | JSON,
        "prompt_id": st.text() | JSON,
        "k": st.integers() | JSON,
        "min_score": JSON,
        "filters": JSON | st.fixed_dictionaries({}, optional={"since": JSON, "account_ids": JSON}),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=FIELDS | JSON, raw=st.binary(max_size=64))
def test_fuzzed_bodies_never_cause_5xx(client, env, body, raw):
    _, keys = env
    headers = {**auth(keys["all"]), "content-type": "application/json"}
    # json.dumps writes NaN/Infinity as Python does: invalid JSON that parsers still accept
    for response in (
        client.post("/v1/search", content=json.dumps(body), headers=headers),
        client.post("/v1/prompts", content=json.dumps({"prompts": [body]}), headers=headers),
        client.post("/v1/search", content=raw, headers=headers),
    ):
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}


def test_readers_during_writes_see_whole_batches(client, env):
    """Searches running while batches are ingested see the old or the new state, never half."""
    _, keys = env
    seen, errors = [], []

    def read() -> None:
        for _ in range(15):
            body = client.get("/v1/stats", headers=auth(keys["all"])).json()
            seen.append(body["prompts"])
            if not body["prompts"] == body["vectors"] == body["signatures"]:
                errors.append(body)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    start = client.get("/v1/stats", headers=auth(keys["all"])).json()["prompts"]
    for b in range(5):
        batch = [
            {
                "id": f"conc-{b}-{i}",
                "text": f"concurrent prompt {b} {i} " + background_texts(300)[i],
                "account_id": "writer",
                "timestamp": 1795300000 + i,
            }
            for i in range(10)
        ]
        assert client.post("/v1/prompts", json={"prompts": batch}, headers=auth(keys["all"])).status_code == 200
    for t in readers:
        t.join()
    assert not errors
    assert all((n - start) % 10 == 0 for n in seen if n >= start)  # only whole batches are ever visible


SECRETS = {
    "email": ("write to jane.doe@example.com today", "[EMAIL]"),
    "phone": ("call me on +1 415-555-0132 tonight", "[PHONE]"),
    "api_key": ("my key is sk-proj-abcdefghijklmnopqrstuvwxyz123456 ok", "[SECRET]"),
    "github_token": ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789AB here", "[SECRET]"),
    "card": ("card 4111 1111 1111 1111 exp 12/29", "[CARD]"),
    "ipv4": ("the server at 192.168.10.20 is down", "[IP]"),
    "ipv6": ("and 2001:db8::1 too", "[IP]"),
}


def test_redaction_masks_each_kind_and_raw_scope_sees_the_original(env):
    path, keys = env
    store = KeyStore(path / "keys.json")
    raw_key = store.create("raw-reader", ["read", "raw"], rate=1000)
    rows = [
        {
            "id": f"secret-{kind}",
            "text": f"Please help with this. {text}",
            "account_id": "leaky",
            "timestamp": 1795400000,
        }
        for kind, (text, _) in SECRETS.items()
    ]
    with TestClient(create_app(Settings(path, anonymous_rate=1000, anonymous_burst=1000), encoder=FakeEncoder())) as c:
        assert c.post("/v1/prompts", json={"prompts": rows}, headers=auth(keys["write"])).status_code == 200
        for kind, (text, mask) in SECRETS.items():
            masked = c.get(f"/v1/prompts/secret-{kind}", headers=auth(keys["read"])).json()["text"]
            assert mask in masked, (kind, masked)
            secret = next(w for w in text.split() if any(ch.isdigit() for ch in w) or "@" in w)
            assert secret not in masked, (kind, masked)
            assert c.get(f"/v1/prompts/secret-{kind}", headers=auth(raw_key)).json()["text"].endswith(text)
        hits = c.post("/v1/search", json={"text": rows[0]["text"], "k": 3}, headers=auth(keys["read"])).json()
        assert "jane.doe@example.com" not in json.dumps(hits)
    audit = [json.loads(line) for line in (path / "audit.jsonl").read_text().splitlines()]
    assert any(a["key_name"] == "raw-reader" and a["raw"] for a in audit)
    assert any(a["key_name"] == "read" and not a["raw"] for a in audit)


def test_admin_takes_a_snapshot_over_the_api(client, env, tmp_path):
    from indexer.snapshots import restore_snapshot

    path, keys = env
    made = client.post("/v1/snapshots", headers=auth(keys["admin"])).json()
    listed = client.get("/v1/snapshots", headers=auth(keys["admin"])).json()["snapshots"]
    assert made["name"] in [s["name"] for s in listed] and "prompts.sqlite" in made["files"]
    restore_snapshot(path / "snapshots" / made["name"], tmp_path / "restored", key_file=path / "snapshot.key")
    with PromptIndex.open(tmp_path / "restored", FakeEncoder()) as index:
        assert index.verify()["consistent"] and index.counts()["prompts"] >= 272


def test_admin_restores_a_snapshot_over_the_api_and_every_worker_follows(tmp_path):
    from indexer.service import IndexService

    path = tmp_path / "idx"
    texts = background_texts(120)
    with PromptIndex.open(path, FakeEncoder(), writable=True, create=True) as index:
        first = [Prompt(f"a{i}", t, f"user{i % 7}", 1_795_000_000.0 + i) for i, t in enumerate(texts[:80])]
        index.upsert(first, index.signals([p.text for p in first]))
        index.checkpoint()
    admin = KeyStore(path / "keys.json").create("admin", ["read", "write", "admin"])
    other_worker = IndexService(path, FakeEncoder())
    app = create_app(Settings(path, anonymous_rate=1000, anonymous_burst=1000), encoder=FakeEncoder())
    with TestClient(app) as c:
        name = c.post("/v1/snapshots", headers=auth(admin)).json()["name"]
        later = [
            {"id": f"b{i}", "text": t, "account_id": "late", "timestamp": 1795100000} for i, t in enumerate(texts[80:])
        ]
        assert c.post("/v1/prompts", json={"prompts": later}, headers=auth(admin)).status_code == 200
        assert other_worker.search([texts[100]], [None], 1, 0.0, SearchFilters())[0].results[0].id == "b20"
        later_key = KeyStore(path / "keys.json").create("made-after-the-snapshot", ["read"])

        assert c.post("/v1/snapshots/nothing.snapshot/restore", headers=auth(admin)).status_code == 404
        assert c.post("/v1/snapshots/..%2Fkeys.json/restore", headers=auth(admin)).status_code in (404, 422)
        done = c.post(f"/v1/snapshots/{name}/restore", headers=auth(admin))
        assert done.status_code == 200, done.text
        assert done.json()["prompts"] == 80 and done.json()["consistent"]

        assert c.get("/v1/prompts/b20", headers=auth(later_key)).status_code == 404  # keys kept, data restored
        assert c.get("/v1/prompts/a20", headers=auth(later_key)).status_code == 200
        hit = c.post("/v1/search", json={"text": texts[100], "k": 1}, headers=auth(admin)).json()["results"][0]
        assert hit["id"].startswith("a")
    # another worker serving the same directory notices the restore on its next request
    hit = other_worker.search([texts[100]], [None], 1, 0.0, SearchFilters())[0].results[0]
    assert hit.id.startswith("a")
    assert other_worker.index.verify() == {**other_worker.index.verify(), "store": 80, "consistent": True}
    other_worker.close()
    assert not (path / ".restore").exists()


def test_after_a_delete_a_cluster_counts_the_members_it_still_has(env, tmp_path):
    """It used to show `size 60` with 56 members listed; accounts and last_seen follow too."""
    import shutil

    src, keys = env
    path = tmp_path / "idx"
    shutil.copytree(src, path)
    with TestClient(create_app(Settings(path, anonymous_rate=1000, anonymous_burst=1000), encoder=FakeEncoder())) as c:
        (flagged,) = c.get("/v1/clusters", params={"flagged": True}, headers=auth(keys["read"])).json()["clusters"]
        assert (flagged["size"], flagged["accounts"]) == (60, 15)
        gone = c.delete("/v1/accounts/bot1/prompts", headers=auth(keys["write"]))
        assert gone.json() == {"deleted": 4}
        (after,) = c.get("/v1/clusters", params={"flagged": True}, headers=auth(keys["read"])).json()["clusters"]
        page = c.get(f"/v1/clusters/{after['cluster_id']}", params={"limit": 500}, headers=auth(keys["read"])).json()
        assert (after["size"], after["accounts"]) == (56, 14) == (len(page["members"]), page["cluster"]["accounts"])
        missing = c.delete("/v1/accounts/bot1/prompts", headers=auth(keys["write"]))
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "no stored prompts of account 'bot1'"
