"""Server settings: the one place that reads the environment (PROMPTSIM_*)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .webhook import Webhook

LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class Settings:
    """What `promptsim serve` passes to every worker."""

    index_dir: Path
    keys_file: Path | None = None
    insecure_dev: bool = False
    host: str = "127.0.0.1"
    max_body_bytes: int = 8 * 2**20
    write_wait_seconds: float = 1.0  # then 503 + Retry-After: another process holds the write lock
    anonymous_rate: float = 2.0  # per client address: requests without a valid key, sign-in attempts
    anonymous_burst: int = 20
    secure_cookies: bool = False  # behind TLS: session cookies get the Secure flag
    alert_webhook: str | None = None  # signed JSON alerts for watchlist hits go here (api/webhook.py)
    alert_secret_file: Path | None = None  # the HMAC secret, in a mode-600 file
    alert_batch_seconds: float = 60.0  # watchlist hits are batched this long
    # Requests one worker runs at once (its thread pool; the rest wait on the event loop). Every
    # search thread wants the GIL: 40, anyio's default, made a worker's CPU per search 13.7 ms
    # against 7.1 at 4 (bench/load.py, 2 workers on 2 cores: 225 -> 275 requests/s).
    worker_threads: int = 4

    @property
    def keys_path(self) -> Path:
        from .keys import KEYS_FILE

        return self.keys_file or self.index_dir / KEYS_FILE

    def to_env(self) -> dict[str, str]:
        return {
            "PROMPTSIM_INDEX": str(self.index_dir),
            "PROMPTSIM_KEYS": str(self.keys_file or ""),
            "PROMPTSIM_INSECURE_DEV": "1" if self.insecure_dev else "",
            "PROMPTSIM_HOST": self.host,
            "PROMPTSIM_ANONYMOUS_RATE": str(self.anonymous_rate),
            "PROMPTSIM_ANONYMOUS_BURST": str(self.anonymous_burst),
            "PROMPTSIM_SECURE_COOKIES": "1" if self.secure_cookies else "",
            "PROMPTSIM_ALERT_WEBHOOK": self.alert_webhook or "",
            "PROMPTSIM_ALERT_SECRET_FILE": str(self.alert_secret_file or ""),
            "PROMPTSIM_ALERT_BATCH_SECONDS": str(self.alert_batch_seconds),
            "PROMPTSIM_WORKER_THREADS": str(self.worker_threads),
        }

    @classmethod
    def from_env(cls) -> Settings:
        keys = os.environ.get("PROMPTSIM_KEYS")
        secret = os.environ.get("PROMPTSIM_ALERT_SECRET_FILE")
        return cls(
            index_dir=Path(os.environ["PROMPTSIM_INDEX"]),
            keys_file=Path(keys) if keys else None,
            insecure_dev=bool(os.environ.get("PROMPTSIM_INSECURE_DEV")),
            host=os.environ.get("PROMPTSIM_HOST", "127.0.0.1"),
            anonymous_rate=float(os.environ.get("PROMPTSIM_ANONYMOUS_RATE", 2.0)),
            anonymous_burst=int(os.environ.get("PROMPTSIM_ANONYMOUS_BURST", 20)),
            secure_cookies=bool(os.environ.get("PROMPTSIM_SECURE_COOKIES")),
            alert_webhook=os.environ.get("PROMPTSIM_ALERT_WEBHOOK") or None,
            alert_secret_file=Path(secret) if secret else None,
            alert_batch_seconds=float(os.environ.get("PROMPTSIM_ALERT_BATCH_SECONDS", 60.0)),
            worker_threads=int(os.environ.get("PROMPTSIM_WORKER_THREADS", 4)),
        )

    def webhook(self) -> Webhook | None:
        """The alert webhook, checked (URL, secret file mode), or None when alerts are off."""
        from .webhook import Webhook

        if (self.alert_webhook is None) != (self.alert_secret_file is None):
            raise ValueError("--alert-webhook and --alert-secret-file go together: give both, or neither")
        if self.alert_webhook is None or self.alert_secret_file is None:
            return None
        return Webhook.from_options(self.alert_webhook, self.alert_secret_file)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
