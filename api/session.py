"""Browser sessions for the analyst UI: a signed, expiring cookie naming an API key (never the key itself).

The cookie is `key_id.expiry.hmac`, signed with a per-index secret (DIR/session.secret,
created once, mode 600) so every worker accepts every other worker's sessions. A revoked
key ends its sessions at once, since the key id must still be live.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from .keys import ApiKey

COOKIE = "promptsim_session"
LIFETIME = 8 * 3600


class Sessions:
    def __init__(self, secret_file: Path):
        self._secret = _load_or_create(secret_file)

    def issue(self, key: ApiKey, now: float | None = None) -> str:
        expiry = int((now or time.time()) + LIFETIME)
        payload = f"{key.key_id}.{expiry}"
        return f"{payload}.{self._sign(payload)}"

    def resolve(self, cookie: str | None, live: dict[str, ApiKey], now: float | None = None) -> ApiKey | None:
        """The live key a session cookie stands for, or None (bad signature, expired, revoked)."""
        if not cookie or cookie.count(".") != 2:
            return None
        key_id, expiry, signature = cookie.split(".")
        if not hmac.compare_digest(self._sign(f"{key_id}.{expiry}"), signature):
            return None
        if not expiry.isdigit() or int(expiry) < (now or time.time()):
            return None
        return live.get(key_id)

    def _sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()


def _load_or_create(path: Path) -> bytes:
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(secrets.token_bytes(32))
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # first worker wins; the others read its secret
        except FileExistsError:
            pass
        tmp.unlink()
    return path.read_bytes()
