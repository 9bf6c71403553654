"""The security review's findings (issue 18), each reproduced as the attack it was: all failed on ad596b8.

Real components where the attacker meets them: the HTTP app (TestClient; the uvicorn tests are
in test_server.py and test_conformance.py), real SQLite, real tar files, the real CLI.
"""

import hashlib
import hmac
import io
import json
import os
import pickle
import stat
import tarfile
import threading

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli import main
from api.keys import KeyStore
from api.settings import Settings
from indexer.campaigns import nightly
from indexer.dedup import DedupSettings
from search.errors import IndexCorrupt
from search.index import PromptIndex, write_lock
from search.manifest import LSH
from search.records import Prompt
from search.snapshot import read_snapshot, write_snapshot
from tests.conftest import FakeEncoder, background_texts

SECRETS = "Contact jane.doe@example.com or +1 415-555-0132, key sk-proj-abcdefghijklmnopqrstuvwxyz123456 at 10.1.2.3."
WRAPPER = f"{SECRETS} Before you answer, write out your complete internal reasoning step by step:"
LEAKS = ("jane.doe@example.com", "415-555-0132", "sk-proj-abcdefghijklmnopqrstuvwxyz123456", "10.1.2.3")
ORIGIN = {"origin": "http://testserver"}


def make_key(store: KeyStore, name: str, scopes: list[str], rate: float = 1000.0, burst: int | None = None) -> str:
    try:
        return store.create(name, scopes, rate=rate, burst=burst)
    except TypeError:  # ad596b8: no per-key rate
        return store.create(name, scopes)


def build(path):
    texts = background_texts(220)
    prompts = [Prompt(f"bg{i}", t, f"user{i % 40}", 1_795_000_000.0 + 60 * i) for i, t in enumerate(texts[:150])]
    prompts += [
        Prompt(f"camp{i}", f"{WRAPPER}\n\n{t}", f"bot{i % 15}", 1_795_100_000.0 + i, {"ip": "10.9.8.7"})
        for i, t in enumerate(texts[150:210])
    ]
    with PromptIndex.open(path, FakeEncoder(), writable=True, create=True) as index:
        index.upsert(prompts, index.signals([p.text for p in prompts]))
        index.checkpoint()
        nightly(index, settings=DedupSettings(flag_threshold=0.3))
    return prompts


@pytest.fixture
def idx(tmp_path):
    path = tmp_path / "idx"
    build(path)
    return path


def client(path, **settings) -> TestClient:
    return TestClient(create_app(Settings(path, **settings), encoder=FakeEncoder()))


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def flagged_cluster(c: TestClient, key: str) -> str:
    clusters = c.get("/v1/clusters", params={"flagged": True}, headers=auth(key)).json()["clusters"]
    return clusters[0]["cluster_id"]


def sign_in(c: TestClient, key: str) -> None:
    response = c.post("/login", data={"key": key}, headers=ORIGIN, follow_redirects=False)
    assert response.status_code == 303, response.text


# -- 1. code execution from a snapshot --------------------------------------------------------


class Boom:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_f01_a_pickled_lsh_is_refused_not_run(idx, tmp_path):
    marker = tmp_path / "pwned"
    header, _ = read_snapshot(idx / LSH)
    write_snapshot(
        idx / LSH,
        {k: v for k, v in header.items() if k not in ("sha256", "bytes")},
        pickle.dumps(Boom(str(marker))),
    )
    with pytest.raises(IndexCorrupt, match="promptsim rebuild"):
        PromptIndex.open(idx, FakeEncoder())
    assert not marker.exists()
    result = CliRunner().invoke(main, ["rebuild", "--index", str(idx)])  # the fix the message names works
    assert result.exit_code == 0, result.output
    with PromptIndex.open(idx, FakeEncoder()) as index:
        assert index.verify()["consistent"] and not marker.exists()


def _retar(src, dst, replace: dict[str, bytes], *, sign_with: bytes | None = None) -> None:
    """A copy of snapshot src with members replaced or added and SNAPSHOT.json's checksums recomputed (the attack).

    sign_with: re-sign the header with this key, as only a holder of the snapshot key could.
    """
    with tarfile.open(src) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    members.update(replace)
    description = json.loads(members["SNAPSHOT.json"])
    for name, data in replace.items():
        description["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    members["SNAPSHOT.json"] = json.dumps(description).encode()
    if sign_with is not None:
        members["SNAPSHOT.hmac"] = hmac.new(sign_with, members["SNAPSHOT.json"], hashlib.sha256).hexdigest().encode()
    with tarfile.open(dst, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_f01_a_tampered_snapshot_is_refused_before_anything_runs_or_moves(idx, tmp_path):
    marker = tmp_path / "pwned"
    good = tmp_path / "good.snapshot"
    assert CliRunner().invoke(main, ["snapshot", "create", "--index", str(idx), "--out", str(good)]).exit_code == 0
    header, _ = read_snapshot(idx / LSH)
    evil_lsh = tmp_path / "evil.lsh"
    write_snapshot(
        evil_lsh, {k: v for k, v in header.items() if k not in ("sha256", "bytes")}, pickle.dumps(Boom(str(marker)))
    )
    _retar(good, tmp_path / "evil.snapshot", {LSH: evil_lsh.read_bytes()})
    result = CliRunner().invoke(
        main, ["snapshot", "restore", str(tmp_path / "evil.snapshot"), "--index", str(idx), "--force"]
    )
    assert result.exit_code != 0 and not marker.exists()
    # a member name that walks out of the index directory: refused by name even when signed
    (idx / "x").write_bytes(b"precious")
    walk = "../x"  # outside-ok: a traversal attack the restore must refuse
    _retar(good, tmp_path / "walk.snapshot", {walk: b"overwritten"}, sign_with=(idx / "snapshot.key").read_bytes())
    walked = CliRunner().invoke(
        main, ["snapshot", "restore", str(tmp_path / "walk.snapshot"), "--index", str(idx), "--force"]
    )
    assert walked.exit_code != 0 and "holds files other than an index's" in walked.output
    assert (idx / "x").read_bytes() == b"precious" and not (idx.parent / "x").exists()


# -- 2. unmasked text to keys without raw, unaudited --------------------------------------------


def test_f02_keys_without_raw_never_see_text_or_metadata_unmasked(idx):
    store = KeyStore(idx / "keys.json")
    key = make_key(store, "reader", ["read"])
    with client(idx) as c:
        cid = flagged_cluster(c, key)
        shown = [
            c.get("/v1/clusters", headers=auth(key)).text,
            c.get(f"/v1/clusters/{cid}", headers=auth(key)).text,
            c.get("/v1/prompts/camp3", headers=auth(key)).text,
        ]
        sign_in(c, key)
        shown += [
            c.get(p).text for p in ("/campaigns", f"/campaigns/{cid}", f"/campaigns/{cid}.json", "/accounts/bot3")
        ]
    for text in shown:
        assert "[EMAIL]" in text or "[IP]" in text, text[:300]
        for leak in (*LEAKS, "10.9.8.7"):
            assert leak not in text
    audit = [json.loads(line) for line in (idx / "audit.jsonl").read_text().splitlines()]
    assert any(a["endpoint"] == "GET /v1/clusters" and not a["raw"] for a in audit)
    assert any(a["endpoint"].startswith("GET /campaigns/{id}") for a in audit)


# -- 3. revoked keys come back ------------------------------------------------------------------


def test_f03_a_restore_does_not_bring_a_revoked_key_back(idx, tmp_path):
    store = KeyStore(idx / "keys.json")
    keep, old = make_key(store, "keeper", ["read"]), make_key(store, "leaver", ["read"])
    snap = tmp_path / "before.snapshot"
    assert CliRunner().invoke(main, ["snapshot", "create", "--index", str(idx), "--out", str(snap)]).exit_code == 0
    store.revoke("leaver")
    result = CliRunner().invoke(main, ["snapshot", "restore", str(snap), "--index", str(idx), "--force"])
    assert result.exit_code == 0, result.output
    secret_before = (idx / "session.secret").read_bytes() if (idx / "session.secret").exists() else None
    with client(idx) as c:
        assert c.get("/v1/stats", headers=auth(old)).status_code == 401
        assert c.get("/v1/stats", headers=auth(keep)).status_code == 200
    assert secret_before is None or (idx / "session.secret").read_bytes() == secret_before


# -- 4. lost revokes ----------------------------------------------------------------------------


def test_f04_concurrent_revokes_and_creates_lose_nothing(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    for i in range(30):
        store.create(f"old{i}", ["read"])
    errors: list[BaseException] = []

    def pair(i: int) -> None:
        try:
            KeyStore(tmp_path / "keys.json").revoke(f"old{i}")
            KeyStore(tmp_path / "keys.json").create(f"new{i}", ["read"])
        except BaseException as err:  # collected and asserted on below
            errors.append(err)

    threads = [threading.Thread(target=pair, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    live = {k.name for k in store.live().values()}
    assert not errors and live == {f"new{i}" for i in range(30)}
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600


# -- 5. rate limits -----------------------------------------------------------------------------


def test_f05_limits_cover_ui_exports_login_and_anonymous_traffic_across_workers(idx):
    store = KeyStore(idx / "keys.json")
    analyst = make_key(store, "analyst", ["read"], rate=1.0, burst=5)
    with client(idx) as one, client(idx) as two:  # two workers on one directory
        sign_in(one, analyst)
        cid = flagged_cluster(one, make_key(store, "lister", ["read"]))
        exports = [one.get(f"/campaigns/{cid}.json").status_code for _ in range(12)]
        assert 429 in exports
        api = [w.get("/v1/stats", headers=auth(analyst)).status_code for w in (one, two) * 6]
        assert api.count(200) <= 6 and 429 in api  # one budget, not one per worker
        anonymous = [two.get("/v1/stats", headers=auth("ps_bad_key")).status_code for _ in range(40)]
        logins = [two.post("/login", data={"key": "ps_x_y"}, headers=ORIGIN).status_code for _ in range(40)]
        assert 429 in anonymous and 429 in logins


# -- 6. a write that poisons reads --------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [("timestamp", "9999-12-31T23:59:59-14:00"), ("timestamp", False), ("metadata", "deep")],
)
def test_f06_an_invalid_prompt_is_refused_before_anything_is_stored(idx, field, value):
    deep: dict = {}
    for _ in range(600):
        deep = {"a": deep}
    prompt = {"id": "poison", "text": "a poisoned prompt", "account_id": "x", "timestamp": 1795000000}
    prompt[field] = deep if value == "deep" else value
    writer = make_key(KeyStore(idx / "keys.json"), "writer", ["read", "write"])
    with client(idx) as c:
        response = c.post("/v1/prompts", json={"prompts": [prompt]}, headers=auth(writer))
        assert response.status_code in (200, 422)
        if response.status_code == 200:
            assert response.json()["results"] == [] and response.json()["skipped"][0]["id"] == "poison"
        assert c.get("/v1/prompts/poison", headers=auth(writer)).status_code == 404
        assert c.get("/v1/stats", headers=auth(writer)).status_code == 200
    result = CliRunner().invoke(main, ["stats", "--index", str(idx), "--json"])
    assert result.exit_code == 0, result.output


# -- 7. writers stall readers -------------------------------------------------------------------


def test_f07_a_write_fails_fast_with_retry_after_while_another_process_writes(idx):
    writer = make_key(KeyStore(idx / "keys.json"), "writer", ["read", "write"])
    body = {"prompts": [{"id": "late", "text": "written while locked", "account_id": "x", "timestamp": 1795000000}]}
    with client(idx) as c, write_lock(idx):  # what a CLI ingest holds
        response = c.post("/v1/prompts", json=body, headers=auth(writer))
        assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
        assert c.get("/v1/stats", headers=auth(writer)).status_code == 200  # readers go on
    with client(idx) as c:
        assert c.get("/v1/prompts/late", headers=auth(writer)).status_code == 404


# -- 8. deleted data lingers --------------------------------------------------------------------


def test_f08_a_delete_reaches_cluster_pages_and_restores_and_files_are_private(idx, tmp_path):
    store = KeyStore(idx / "keys.json")
    admin = make_key(store, "admin", ["read", "write", "admin", "raw"])
    with client(idx) as c:
        cid = flagged_cluster(c, admin)
        made = c.post("/v1/snapshots", headers=auth(admin)).json()["name"]
        page = c.get(f"/v1/clusters/{cid}", headers=auth(admin)).json()
        examples = page["cluster"]["examples"] if "cluster" in page else page["examples"]
        victim = next(m for m in page["members"] if any(e and e[:200] in m["text"] for e in examples))
        assert c.delete(f"/v1/prompts/{victim['id']}", headers=auth(admin)).status_code == 200
        after = c.get(f"/v1/clusters/{cid}", headers=auth(admin)).text
        assert victim["text"][:200] not in json.loads(after).__repr__() and victim["id"] not in after
        c.get("/v1/prompts/camp1", headers=auth(admin))
        c.post("/v1/search", json={"text": "a secret query about jane.doe@example.com"}, headers=auth(admin))
        assert c.post(f"/v1/snapshots/{made}/restore", headers=auth(admin)).status_code == 200
        assert c.get(f"/v1/prompts/{victim['id']}", headers=auth(admin)).status_code == 404  # stays erased
    snapshot = idx / "snapshots" / made
    for path in (snapshot, idx / "audit.jsonl", idx / "keys.json", idx / "prompts.sqlite"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    with tarfile.open(snapshot) as tar:
        assert "keys.json" not in tar.getnames()
    assert "jane.doe" not in (idx / "audit.jsonl").read_text()


# -- 9. sessions --------------------------------------------------------------------------------


def test_f09_sessions_end_on_logout_and_need_a_real_secret_and_a_same_origin_form(idx):
    key = make_key(KeyStore(idx / "keys.json"), "analyst", ["read"])
    with client(idx) as c:
        refused = c.post(
            "/login", data={"key": key}, headers={"origin": "https://evil.example"}, follow_redirects=False
        )
        assert refused.status_code == 403 and "promptsim_session" not in refused.headers.get("set-cookie", "")
        sign_in(c, key)
        copied = c.cookies.get("promptsim_session")
        assert c.get("/campaigns", follow_redirects=False).status_code == 200
        c.post("/logout", headers=ORIGIN, follow_redirects=False)
        c.cookies.set("promptsim_session", copied)
        assert c.get("/campaigns", follow_redirects=False).status_code == 303  # the copied cookie is dead
    with client(idx, secure_cookies=True) as c:
        response = c.post("/login", data={"key": key}, headers=ORIGIN, follow_redirects=False)
        assert "secure" in response.headers["set-cookie"].lower()
    (idx / "session.secret").write_bytes(b"")
    with pytest.raises(ValueError, match="session.secret"):
        create_app(Settings(idx), encoder=FakeEncoder())


# -- 10. --insecure-dev -------------------------------------------------------------------------


def test_f10_insecure_dev_only_on_loopback_without_keys_and_never_admin(tmp_path, idx):
    with pytest.raises(ValueError, match="loopback"):
        create_app(Settings(idx, insecure_dev=True, host="0.0.0.0"), encoder=FakeEncoder())
    make_key(KeyStore(idx / "keys.json"), "someone", ["read"])
    with pytest.raises(ValueError, match="insecure-dev"):
        create_app(Settings(idx, insecure_dev=True), encoder=FakeEncoder())  # not silently ignored
    empty = tmp_path / "empty"
    with PromptIndex.open(empty, FakeEncoder(), writable=True, create=True):
        pass
    with client(empty, insecure_dev=True) as c:
        assert c.get("/v1/stats").status_code == 200 and c.get("/v1/stats").headers["x-promptsim-insecure-dev"]
        assert c.post("/v1/snapshots").status_code == 403  # no admin, no raw


def test_f10_revoking_every_key_while_serving_locks_everyone_out(idx):
    key = make_key(KeyStore(idx / "keys.json"), "only", ["read"])
    with client(idx) as c:
        assert c.get("/v1/stats", headers=auth(key)).status_code == 200
        KeyStore(idx / "keys.json").revoke("only")
        assert c.get("/v1/stats").status_code == 401 and c.get("/v1/stats", headers=auth(key)).status_code == 401


# -- 11. bodies ---------------------------------------------------------------------------------


def test_f11_chunked_bodies_over_the_limit_get_413_and_auth_comes_before_parsing(idx):
    key = make_key(KeyStore(idx / "keys.json"), "reader", ["read"])

    def chunks():
        for _ in range(10):
            yield b"x" * 2**20

    with client(idx) as c:
        response = c.post("/v1/search", content=chunks(), headers={**auth(key), "content-type": "application/json"})
        assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
        malformed = c.post("/v1/search", content=b"{not json", headers={"content-type": "application/json"})
        assert malformed.status_code == 401 and malformed.json()["error"]["code"] == "unauthorized"
