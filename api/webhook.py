"""Signed webhook alerts: signing, delivery from the outbox (DIR/triage.sqlite), and the server's worker thread.

Body: JSON with `id` (the same on every attempt), `kind`, a Slack-compatible `text` and
`timestamp` (epoch seconds of this attempt). Headers: `X-Promptsim-Signature: sha256=<hex
HMAC-SHA256 of the body>` with the secret from a mode-600 file, `X-Promptsim-Timestamp` (the
body's timestamp: the signature covers it, so a receiver refuses replays older than five
minutes) and `X-Promptsim-Delivery` (the id: a receiver drops a repeat by it). Delivery is
ordered oldest first, one process at a time (an exclusive flock), retried with exponential
backoff and never dropped: an alert leaves the outbox only when the receiver answered 2xx.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from indexer.alerts import watch_alert
from indexer.private_files import touch_private
from indexer.triage_store import TriageStore

logger = logging.getLogger(__name__)
SIGNATURE = "X-Promptsim-Signature"
TIMESTAMP = "X-Promptsim-Timestamp"
DELIVERY = "X-Promptsim-Delivery"
REPLAY_WINDOW = 300.0  # seconds a receiver should accept a timestamp for
LOCK_FILE = "alerts.lock"
MIN_SECRET = 16


@dataclass(frozen=True)
class Webhook:
    """Where alerts go and the HMAC secret that signs them."""

    url: str
    secret: bytes = field(repr=False)
    secret_file: Path | None = None

    @classmethod
    def from_options(cls, url: str, secret_file: Path) -> Webhook:
        """Check the URL and read the secret; a secret file others may read is refused."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"--alert-webhook {url!r} must be an http:// or https:// URL")
        try:
            mode = secret_file.stat().st_mode & 0o777
            secret = secret_file.read_bytes().strip()
        except OSError as err:
            raise ValueError(f"cannot read --alert-secret-file {secret_file}: {err.strerror}") from err
        if mode & 0o077:
            raise ValueError(
                f"--alert-secret-file {secret_file} has mode {mode:04o}: others may read the secret; "
                f"run 'chmod 600 {secret_file}'"
            )
        if len(secret) < MIN_SECRET:
            raise ValueError(
                f"--alert-secret-file {secret_file} holds {len(secret)} bytes; use at least {MIN_SECRET} "
                "(e.g. 'openssl rand -hex 32')"
            )
        return cls(url, secret, secret_file)


def signed(payload: dict[str, Any], secret: bytes, now: float) -> tuple[bytes, dict[str, str]]:
    """The body (the payload with this attempt's timestamp) and its headers."""
    stamp = int(now)
    body = json.dumps({**payload, "timestamp": stamp}, ensure_ascii=False, sort_keys=True).encode("utf-8")
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "promptsim-alerts",
        SIGNATURE: f"sha256={digest}",
        TIMESTAMP: str(stamp),
        DELIVERY: str(payload["id"]),
    }
    return body, headers


def verify(secret: bytes, body: bytes, signature: str, timestamp: str, *, now: float | None = None) -> bool:
    """What a receiver checks: the HMAC of the body, and a fresh timestamp that is the body's own."""
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return False
    try:
        stamp = int(json.loads(body)["timestamp"])
    except (ValueError, KeyError, TypeError):
        return False
    fresh = abs((time.time() if now is None else now) - stamp) <= REPLAY_WINDOW
    return fresh and timestamp == str(stamp)


def send(client: httpx.Client, webhook: Webhook, payload: dict[str, Any]) -> str | None:
    """POST one alert; None when the receiver answered 2xx, else what went wrong."""
    body, headers = signed(payload, webhook.secret, time.time())
    try:
        response = client.post(webhook.url, content=body, headers=headers)
    except httpx.HTTPError as err:
        return f"{type(err).__name__}: {err}"
    return None if response.is_success else f"HTTP {response.status_code}"


class Courier:
    """Delivers one webhook's due alerts from an index's outbox, oldest first."""

    def __init__(
        self,
        index_dir: Path,
        webhook: Webhook,
        *,
        backoff: tuple[float, float] = (1.0, 300.0),
        timeout: float = 10.0,
        on_result: Callable[[bool], None] | None = None,
    ):
        self.index_dir, self.webhook, self.backoff = index_dir, webhook, backoff
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._on_result = on_result

    def close(self) -> None:
        self._client.close()

    def deliver(self) -> tuple[int, str | None]:
        """Send every due alert until one fails; (how many were delivered, the failure or None).

        Another process delivering this index's alerts right now: nothing is sent (0, None)."""
        sent = 0
        with _exclusive(self.index_dir / LOCK_FILE) as mine, TriageStore(self.index_dir) as store:
            while mine:
                due = store.pending(self.webhook.url, now=time.time())
                for alert_id, payload, attempts in due:
                    error = send(self._client, self.webhook, payload)
                    if self._on_result is not None:
                        self._on_result(error is None)
                    if error is not None:
                        store.failed(alert_id, error, time.time() + self.delay(attempts))
                        logger.warning("alert %s not delivered (attempt %d): %s", alert_id, attempts + 1, error)
                        return sent, error
                    store.delivered(alert_id)
                    sent += 1
                if not due:
                    break
        return sent, None

    def delay(self, failures: int) -> float:
        """Exponential backoff with jitter: base, 2 base, 4 base ... up to the cap."""
        base, cap = self.backoff
        return float(min(cap, base * 2.0 ** min(failures, 30)) * random.uniform(0.8, 1.0))


@contextmanager
def _exclusive(path: Path) -> Iterator[bool]:
    """Hold path's flock if no other process does (a kill -9 releases it)."""
    with open(touch_private(path), "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class AlertWorker:
    """The server's background thread: batches watchlist hits once a minute, delivers the outbox.

    Never on a request's path: ingest only writes its hits (indexer/watchlist.py)."""

    def __init__(
        self,
        index_dir: Path,
        webhook: Webhook,
        *,
        batch_seconds: float = 60.0,
        backoff: tuple[float, float] = (1.0, 300.0),
        on_result: Callable[[bool], None] | None = None,
        poll: float = 1.0,
    ):
        self.index_dir, self.webhook, self.batch_seconds, self.poll = index_dir, webhook, batch_seconds, poll
        self.courier = Courier(index_dir, webhook, backoff=backoff, on_result=on_result)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="promptsim-alerts", daemon=True)
        self._failures = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.courier.close()

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            try:
                delay = self.step()
            except Exception:  # the worker must outlive any one bad round (a locked database, a full disk)
                logger.exception("alert worker round failed; retrying")
                delay = self.courier.delay(self._failures)
                self._failures += 1

    def step(self) -> float:
        """One round: a due batch of hits into the outbox, then delivery; seconds until the next round."""
        self.batch_hits()
        _, error = self.courier.deliver()
        self._failures = self._failures + 1 if error else 0
        return self.courier.delay(self._failures - 1) if error else self.poll

    def batch_hits(self, *, force: bool = False) -> str | None:
        """Queue one alert for the hits waiting since at least batch_seconds (all of them); its id."""
        with TriageStore(self.index_dir) as store:
            oldest = store.oldest_unbatched_hit()
            if oldest is None or (not force and time.time() - oldest < self.batch_seconds):
                return None
            entries = {
                f.family_id: {"note": f.verdict.note, "by": f.verdict.by, "accounts": sorted(f.baseline.accounts)}
                for f in store.families(status="confirmed")
            }
            name = self.index_dir.name
            return store.claim_hits(self.webhook.url, lambda batch, hits: watch_alert(batch, hits, entries, name))
