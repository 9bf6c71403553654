"""Server settings: the one place that reads the environment (PROMPTSIM_*)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

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
        }

    @classmethod
    def from_env(cls) -> Settings:
        keys = os.environ.get("PROMPTSIM_KEYS")
        return cls(
            index_dir=Path(os.environ["PROMPTSIM_INDEX"]),
            keys_file=Path(keys) if keys else None,
            insecure_dev=bool(os.environ.get("PROMPTSIM_INSECURE_DEV")),
            host=os.environ.get("PROMPTSIM_HOST", "127.0.0.1"),
            anonymous_rate=float(os.environ.get("PROMPTSIM_ANONYMOUS_RATE", 2.0)),
            anonymous_burst=int(os.environ.get("PROMPTSIM_ANONYMOUS_BURST", 20)),
            secure_cookies=bool(os.environ.get("PROMPTSIM_SECURE_COOKIES")),
        )


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
