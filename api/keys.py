"""API keys: created once, stored only as SHA-256 hashes, compared in constant time.

A key reads `ps_<id>_<secret>`: the id finds the record, the hash of the whole key must
match it. Keys are random 256-bit secrets, so a fast hash is enough (as for GitHub tokens);
no password-hashing work factor is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SCOPES = ("read", "write", "admin", "raw")  # raw: unmasked prompt text (see api/redact.py)
KEYS_FILE = "keys.json"


@dataclass(frozen=True)
class ApiKey:
    """A key's record: everything but the secret."""

    name: str
    key_id: str
    sha256: str
    scopes: tuple[str, ...]
    created_at: float
    revoked: bool = False


class KeyStore:
    """Keys in a JSON file (the index directory's keys.json unless --keys FILE)."""

    def __init__(self, path: Path):
        self.path = path

    def _load(self) -> list[ApiKey]:
        if not self.path.exists():
            return []
        try:
            rows = json.loads(self.path.read_text("utf-8"))
            return [ApiKey(**{**row, "scopes": tuple(row["scopes"])}) for row in rows]
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"{self.path} is not a promptsim keys file ({err})") from err

    def _save(self, keys: list[ApiKey]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps([asdict(k) for k in keys], indent=2) + "\n", "utf-8")
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    def create(self, name: str, scopes: list[str]) -> str:
        """Create a key and return it (the only time it is ever shown)."""
        unknown = set(scopes) - set(SCOPES)
        if unknown or not scopes:
            raise ValueError(f"scopes must be a comma-separated subset of {','.join(SCOPES)}; got {','.join(scopes)}")
        keys = self._load()
        if any(k.name == name and not k.revoked for k in keys):
            raise ValueError(f"a key named {name!r} exists; revoke it first or pick another name")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        token = f"ps_{key_id}_{secret}"
        keys.append(ApiKey(name, key_id, _digest(token), tuple(scopes), time.time()))
        self._save(keys)
        return token

    def revoke(self, name: str) -> int:
        """Revoke every live key with this name; returns how many."""
        keys = self._load()
        hits = [k for k in keys if k.name == name and not k.revoked]
        if not hits:
            raise ValueError(f"no live key named {name!r}")
        self._save([ApiKey(**{**asdict(k), "revoked": True}) if k in hits else k for k in keys])
        return len(hits)

    def list(self) -> list[ApiKey]:
        return self._load()

    def live(self) -> dict[str, ApiKey]:
        """key id -> record of every unrevoked key (what a server checks against)."""
        return {k.key_id: k for k in self._load() if not k.revoked}


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
