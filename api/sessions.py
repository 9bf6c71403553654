"""Browser sessions for the analyst UI, kept server-side so that signing out and revoking end them.

The cookie holds a random 256-bit session id and its HMAC under DIR/session.secret (mode 600;
an empty or short secret is refused, never used). The server keeps only the id's SHA-256,
the key it stands for and its expiry in DIR/access.sqlite, shared by every worker. A session
resolves only while its row exists, it has not expired and its key is still live.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from indexer.private_files import write_private

from .access_db import AccessDb
from .keys import ApiKey

COOKIE = "promptsim_session"
LIFETIME = 8 * 3600
SECRET_FILE = "session.secret"
_SECRET_BYTES = 32


class Sessions:
    def __init__(self, access: AccessDb, secret_file: Path):
        self._access = access
        self._secret = load_or_create_secret(secret_file)

    def open(self, key: ApiKey) -> str:
        """Start a session for key; returns the cookie value."""
        token = secrets.token_urlsafe(32)
        with self._access.lock:
            self._access.db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?)", (_sha256(token), key.key_id, time.time() + LIFETIME)
            )
        return f"{token}.{self._sign(token)}"

    def resolve(self, cookie: str | None, live: dict[str, ApiKey]) -> ApiKey | None:
        """The live key a session cookie stands for, or None (forged, signed out, expired, revoked)."""
        token = self._token(cookie)
        if token is None:
            return None
        with self._access.lock:
            found = self._access.db.execute(
                "SELECT key_id, expires FROM sessions WHERE token_sha256 = ?", (_sha256(token),)
            ).fetchone()
        if found is None or found[1] < time.time():
            return None
        return live.get(found[0])

    def close(self, cookie: str | None) -> None:
        """End a session (sign out): the cookie, copied or not, no longer resolves."""
        token = self._token(cookie)
        if token is not None:
            with self._access.lock:
                self._access.db.execute("DELETE FROM sessions WHERE token_sha256 = ?", (_sha256(token),))

    def _token(self, cookie: str | None) -> str | None:
        if not cookie or cookie.count(".") != 1:
            return None
        token, signature = cookie.split(".")
        return token if hmac.compare_digest(self._sign(token), signature) else None

    def _sign(self, token: str) -> str:
        return hmac.new(self._secret, token.encode(), hashlib.sha256).hexdigest()


def load_or_create_secret(path: Path) -> bytes:
    """The session secret, made on first use; refuses one that is empty or short."""
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        write_private(tmp, secrets.token_bytes(_SECRET_BYTES))
        try:
            os.link(tmp, path)  # whole or not at all; the first worker wins, the others read its secret
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    secret = path.read_bytes()
    if len(secret) < _SECRET_BYTES:
        raise ValueError(
            f"{path} holds {len(secret)} bytes; a session secret needs {_SECRET_BYTES}. "
            "Delete it and a new one is made (every browser session ends)"
        )
    return secret


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
