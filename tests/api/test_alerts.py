"""Signed alerts end to end: the real CLI and `promptsim serve` in subprocesses, a real HTTP receiver in the test.

The receiver is a small threaded HTTP server on 127.0.0.1 that records every POST; "down" means
it is not listening at all (connection refused), as when a webhook endpoint is redeployed.
Signatures are checked here with the standard library's hmac, not with promptsim's own code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from api.webhook import verify
from indexer.triage_store import TRIAGE_DB, TriageStore
from tests.api.test_server import CLI, ENV, cli, free_port, serving
from tests.conftest import background_texts, write_jsonl

HARVEST = "Think carefully and lay out each step of your reasoning in order before you state the final answer."
REWORDED = (
    "Think it through carefully, laying out every step of your reasoning in order, "
    "and only then state your final answer."
)
SECRET = b"7f3a9c1e5b2d8f4a6c0e9b7d5f3a1c8e"
T0 = 1_795_000_000.0
DAY = 86_400.0


class Receiver:
    """A webhook receiver: records (headers, body) of each POST; up() and down() on one port."""

    def __init__(self, port: int):
        self.port, self.got = port, []
        self.hold = threading.Event()  # while clear and holding, the first POST waits before answering
        self.holding = False
        self._server: ThreadingHTTPServer | None = None
        self.url = f"http://127.0.0.1:{port}/hook"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if receiver.holding and len(receiver.got) == 1:
                    receiver.hold.wait(60)
                try:
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender was killed while we held its request
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> list[str]:
        return [json.loads(body)["id"] for _, body in self.got]


def until(condition, seconds: float = 180.0) -> None:
    """Wait for condition (a deadline for a hung test, not a timing assertion)."""
    deadline = time.time() + seconds
    while not condition():
        if time.time() > deadline:
            pytest.fail("gave up waiting")
        time.sleep(0.2)


def signed_by_us(headers: dict[str, str], body: bytes) -> bool:
    """The receiver's check, written from the contract: sha256=<hex HMAC-SHA256 of the body>, fresh timestamp."""
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    stamp = json.loads(body)["timestamp"]
    fresh = abs(time.time() - stamp) < 300 and headers["x-promptsim-timestamp"] == str(stamp)
    return hmac.compare_digest(expected, headers["x-promptsim-signature"]) and fresh


def pending(idx: Path) -> list[str]:
    with sqlite3.connect(idx / TRIAGE_DB) as db:
        return [a for (a,) in db.execute("SELECT alert_id FROM outbox WHERE delivered IS NULL ORDER BY created")]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("alerts")
    idx, secret = tmp / "idx", tmp / "alert.secret"
    secret.write_bytes(SECRET + b"\n")
    secret.chmod(0o600)
    texts = background_texts(800)
    rows = [
        {"id": f"bg{i}", "text": t, "account_id": f"user{i % 90}", "timestamp": T0 + DAY * 14 * i / 400}
        for i, t in enumerate(texts[:400])
    ]
    rows += [
        {"id": f"c{i}", "text": f"{HARVEST}\n\n{t}", "account_id": f"bot{i % 20}", "timestamp": T0 + DAY * (2 + i / 40)}
        for i, t in enumerate(texts[400:460])
    ]
    cli("ingest", str(write_jsonl(tmp / "p.jsonl", rows)), "--index", str(idx), "--model", "static-minilm")
    return tmp, idx, secret, texts[460:]


def test_the_test_alert_is_signed_over_its_body_and_timestamp(world):
    tmp, idx, secret, _ = world
    receiver = Receiver(free_port())
    receiver.up()
    try:
        done = cli(
            "alerts", "test", "--index", str(idx), "--alert-webhook", receiver.url, "--alert-secret-file", str(secret)
        )
    finally:
        receiver.down()
    assert "delivered test alert test:" in done.stdout
    ((headers, body),) = receiver.got
    payload = json.loads(body)
    assert payload["kind"] == "test" and payload["text"] and headers["x-promptsim-delivery"] == payload["id"]
    assert signed_by_us(headers, body) and verify(
        SECRET, body, headers["x-promptsim-signature"], str(payload["timestamp"])
    )
    tampered = body.replace(b"test alert", b"TEST ALERT")
    assert not verify(SECRET, tampered, headers["x-promptsim-signature"], str(payload["timestamp"]))
    old = json.dumps({**payload, "timestamp": payload["timestamp"] - 3600}, sort_keys=True).encode()
    resigned = "sha256=" + hmac.new(SECRET, old, hashlib.sha256).hexdigest()
    assert not verify(SECRET, old, resigned, str(payload["timestamp"] - 3600))  # a replay an hour later


def test_a_receiver_down_for_a_while_loses_no_alert_and_gets_none_twice(world):
    """dedup and serve queue alerts while the receiver is down; it comes back; each arrives exactly once."""
    tmp, idx, secret, texts = world
    receiver = Receiver(free_port())  # down: nothing listens on its port yet
    hook = ["--alert-webhook", receiver.url, "--alert-secret-file", str(secret)]
    done = cli("dedup", "--index", str(idx), "--out", str(tmp / "clusters.jsonl"), "--json", *hook)
    assert "queued" in done.stderr and "ConnectError" in done.stderr
    clusters = [json.loads(line) for line in (tmp / "clusters.jsonl").read_text().splitlines()]
    campaign = next(c for c in clusters if c["flagged"] and c["template"].startswith("think carefully"))
    queued = pending(idx)
    assert f"campaign:{campaign['cluster_id']}:new:60:{campaign['last_seen']}" in queued
    cli(
        "verdict",
        "--index",
        str(idx),
        "--cluster",
        campaign["cluster_id"],
        "--confirm",
        "--note",
        "harvesting",
        "--by",
        "bob",
    )

    key = cli("keys", "create", "--index", str(idx), "--name", "gw", "--scopes", "read,write").stdout.splitlines()[-1]
    try:
        with serving(idx, *hook, "--alert-batch-seconds", "1") as base:
            fresh = [
                {
                    "id": f"new{i}",
                    "text": f"{REWORDED}\n\n{texts[i]}",
                    "account_id": f"newbot{i}",
                    "timestamp": T0 + 30 * DAY,
                }
                for i in range(2)
            ]
            answered = httpx.post(
                f"{base}/v1/prompts", json={"prompts": fresh}, headers={"Authorization": f"Bearer {key}"}, timeout=120
            )
            assert [r["verdict"] for r in answered.json()["results"]] == ["campaign", "campaign"]  # receiver still down
            until(lambda: any(a.startswith("watch:") for a in pending(idx)))  # the minute's batch, queued
            time.sleep(3)  # down a little longer: the worker retries and backs off meanwhile
            assert receiver.got == [] and len(pending(idx)) == len(queued) + 1
            receiver.up()
            until(lambda: not pending(idx))
            time.sleep(2)  # room for a duplicate to show up, were there one
            metrics = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30).text
    finally:
        receiver.down()
    ids = receiver.ids()
    assert f"promptsim_alert_deliveries_total {float(len(queued) + 1)}" in metrics  # this worker sent them all
    assert "promptsim_alert_failures_total 0.0" not in metrics  # and counted its tries while the receiver was down
    assert Counter(ids).most_common(1)[0][1] == 1  # none twice
    assert set(ids) >= set(queued) and len(ids) == len(queued) + 1  # none lost: every queued one, and the batch
    assert all(signed_by_us(h, b) for h, b in receiver.got)
    (watch,) = [json.loads(b) for _, b in receiver.got if json.loads(b)["kind"] == "watchlist"]
    (entry,) = watch["watch"]
    assert sorted(entry["prompt_ids"]) == ["new0", "new1"] and entry["new_accounts"] == ["newbot0", "newbot1"]
    assert entry["confirmed_by"] == "bob" and "2 prompts matched confirmed campaigns" in watch["text"]
    first = json.loads(receiver.got[0][1]) if receiver.got else {}
    assert first.get("text")  # Slack-compatible: a plain-text summary in `text`


def test_a_sender_killed_mid_delivery_loses_nothing(world, tmp_path):
    """kill -9 while the receiver holds a POST: the next run delivers everything; the one repeat has its id."""
    _, idx, secret, _ = world
    receiver = Receiver(free_port())
    receiver.holding = True
    receiver.up()
    with TriageStore(idx) as store:
        store.enqueue(receiver.url, [{"id": f"kill:{n}", "kind": "test", "text": f"alert {n}"} for n in range(3)])
    hook = ["--alert-webhook", receiver.url, "--alert-secret-file", str(secret)]
    sender = subprocess.Popen([*CLI, "alerts", "deliver", "--index", str(idx), *hook], env=ENV)
    try:
        until(lambda: len(receiver.got) == 1)  # the first alert is in the receiver's hands, unanswered
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(timeout=30)
    finally:
        receiver.hold.set()
    receiver.holding = False
    cli("alerts", "deliver", "--index", str(idx), *hook)
    cli("alerts", "deliver", "--index", str(idx), *hook)  # nothing left: sends nothing
    receiver.down()
    ids = receiver.ids()
    assert set(ids) == {"kill:0", "kill:1", "kill:2"} and not [a for a in pending(idx) if a.startswith("kill:")]
    assert Counter(ids) == {"kill:0": 2, "kill:1": 1, "kill:2": 1}  # only the unanswered one again, same id
    assert {h["x-promptsim-delivery"] for h, b in receiver.got if json.loads(b)["id"] == "kill:0"} == {"kill:0"}


def test_a_secret_file_others_may_read_is_refused_everywhere(world, tmp_path):
    tmp, idx, _, _ = world
    loose = tmp_path / "loose.secret"
    loose.write_bytes(SECRET)
    loose.chmod(0o644)
    hook = ["--alert-webhook", "http://127.0.0.1:9/hook", "--alert-secret-file", str(loose)]
    for args in (
        ["alerts", "test", *hook],
        ["dedup", "--index", str(idx), "--out", str(tmp_path / "c.jsonl"), *hook],
        ["serve", "--index", str(idx), "--port", str(free_port()), *hook],
    ):
        run = subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV, timeout=120)
        assert run.returncode != 0 and "chmod 600" in run.stderr and "Traceback" not in run.stderr, args
    lonely = subprocess.run(
        [*CLI, "alerts", "test", "--alert-webhook", "http://x/"], capture_output=True, text=True, env=ENV
    )
    assert lonely.returncode == 2 and "go together" in lonely.stderr
