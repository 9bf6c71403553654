"""api/sessions.py on its own: signed cookies that resolve only while the session row and its key live."""

import os
import time

import pytest

from api.access_db import AccessDb
from api.keys import ApiKey
from api.sessions import LIFETIME, Sessions, load_or_create_secret


def key(key_id="k1"):
    return ApiKey(name=f"analyst-{key_id}", key_id=key_id, sha256="0" * 64, scopes=("read",), created_at=0.0)


@pytest.fixture
def sessions(tmp_path):
    access = AccessDb(tmp_path / "access.sqlite")
    yield Sessions(access, tmp_path / "session.secret")
    access.close()


def test_a_cookie_resolves_to_its_live_key_until_signed_out(sessions):
    analyst = key()
    cookie = sessions.open(analyst)
    assert sessions.resolve(cookie, {"k1": analyst}) == analyst
    copy = str(cookie)
    sessions.close(cookie)
    assert sessions.resolve(copy, {"k1": analyst}) is None


def test_forged_or_malformed_cookies_resolve_to_nothing(sessions):
    analyst = key()
    token, signature = sessions.open(analyst).split(".")
    live = {"k1": analyst}
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    for cookie in (None, "", token, f"{token}.{flipped}", f"{token}.{signature}.x", f"other.{signature}"):
        assert sessions.resolve(cookie, live) is None, cookie


def test_a_revoked_key_or_an_expired_session_ends_it(sessions, monkeypatch):
    analyst = key()
    cookie = sessions.open(analyst)
    assert sessions.resolve(cookie, {}) is None  # the key is no longer live
    later = time.time() + LIFETIME + 1
    monkeypatch.setattr(time, "time", lambda: later)
    assert sessions.resolve(cookie, {"k1": analyst}) is None


def test_a_cookie_signed_under_another_secret_does_not_resolve(sessions, tmp_path):
    analyst = key()
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = Sessions(AccessDb(tmp_path / "access.sqlite"), other_dir / "session.secret")  # same rows, other secret
    assert other.resolve(sessions.open(analyst), {"k1": analyst}) is None


def test_the_secret_is_made_once_private_and_a_short_one_is_refused(tmp_path):
    path = tmp_path / "session.secret"
    first = load_or_create_secret(path)
    assert len(first) == 32 and load_or_create_secret(path) == first
    assert os.stat(path).st_mode & 0o077 == 0
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="holds 5 bytes; a session secret needs 32"):
        load_or_create_secret(path)
