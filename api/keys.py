"""API keys: created once, stored only as SHA-256 hashes, compared in constant time.

A key reads `ps_<id>_<secret>`: the id finds the record, the hash of the whole key must
match it. Keys are random 256-bit secrets, so a fast hash is enough (as for GitHub tokens);
no password-hashing work factor is needed. Each key carries its own rate limit, set when it
is created: a detection service may need hundreds of requests a second, an analyst a few.

Every change (create, revoke) reads, edits and replaces keys.json under an exclusive lock on
a sidecar lock file, through a temp file of its own, so concurrent commands never lose a
revoke or collide on a temp name.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

SCOPES = ("read", "write", "admin", "raw", "triage")  # raw: unmasked prompt text (api/disclosure.py); triage: verdicts
KEYS_FILE = "keys.json"
DEFAULT_RATE = 10.0  # requests per second, for keys made before rates were per key
DEFAULT_BURST = 20


@dataclass(frozen=True)
class ApiKey:
    """A key's record (everything but the secret): who is asking, what they may do, how often."""

    name: str
    key_id: str
    sha256: str
    scopes: tuple[str, ...]
    created_at: float
    revoked: bool = False
    rate: float = DEFAULT_RATE
    burst: int = DEFAULT_BURST

    @property
    def raw(self) -> bool:
        """True if this key may read prompt text unmasked."""
        return "raw" in self.scopes


class KeyStore:
    """Keys in a JSON file (the index directory's keys.json unless --keys FILE)."""

    def __init__(self, path: Path):
        self.path = path

    def create(self, name: str, scopes: list[str], *, rate: float = DEFAULT_RATE, burst: int | None = None) -> str:
        """Create a key and return it (the only time it is ever shown)."""
        unknown = set(scopes) - set(SCOPES)
        if unknown or not scopes:
            raise ValueError(f"scopes must be a comma-separated subset of {','.join(SCOPES)}; got {','.join(scopes)}")
        if not 0 < rate <= 100_000:
            raise ValueError(f"rate {rate} must be above 0 and at most 100000 requests per second")
        burst = max(1, int(burst if burst is not None else rate * 2))
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        token = f"ps_{key_id}_{secret}"
        with self._editing() as keys:
            if any(k.name == name and not k.revoked for k in keys):
                raise ValueError(f"a key named {name!r} exists; revoke it first or pick another name")
            keys.append(ApiKey(name, key_id, _digest(token), tuple(scopes), time.time(), rate=rate, burst=burst))
        return token

    def revoke(self, name: str) -> int:
        """Revoke every live key with this name; returns how many."""
        with self._editing() as keys:
            hits = [n for n, k in enumerate(keys) if k.name == name and not k.revoked]
            if not hits:
                raise ValueError(f"no live key named {name!r}")
            for n in hits:
                keys[n] = replace(keys[n], revoked=True)
        return len(hits)

    def records(self) -> list[ApiKey]:
        """Every key, revoked ones included (never a secret)."""
        return self._load()

    def live(self) -> dict[str, ApiKey]:
        """key id -> record of every unrevoked key (what a server checks against)."""
        return {k.key_id: k for k in self._load() if not k.revoked}

    @contextmanager
    def _editing(self) -> Iterator[list[ApiKey]]:
        """The keys, to change in place; written back atomically, all under the file's lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(f".{self.path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            keys = self._load()
            yield keys
            self._save(keys)
        finally:
            os.close(fd)

    def _load(self) -> list[ApiKey]:
        if not self.path.exists():
            return []
        try:
            rows = json.loads(self.path.read_text("utf-8"))
            return [ApiKey(**{**row, "scopes": tuple(row["scopes"])}) for row in rows]
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"{self.path} is not a promptsim keys file ({err})") from err

    def _save(self, keys: list[ApiKey]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)  # mode 600, a name of its own
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps([asdict(k) for k in keys], indent=2) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def verify(token: str, keys: dict[str, ApiKey]) -> ApiKey | None:
    """The key record a presented token belongs to, or None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "ps":
        return None
    record = keys.get(parts[1])
    if record is None or not hmac.compare_digest(_digest(token), record.sha256):
        return None
    return record


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
