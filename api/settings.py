"""Server settings: the one place that reads the environment (PROMPTSIM_*)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """What `promptsim serve` passes to every worker."""

    index_dir: Path
    keys_file: Path | None = None
    insecure_dev: bool = False
    max_body_bytes: int = 8 * 2**20
    max_text_chars: int = 100_000
    rate_per_second: float = 50.0
    rate_burst: int = 100
    write_lock_seconds: float = 30.0

    @property
    def keys_path(self) -> Path:
        from .keys import KEYS_FILE

        return self.keys_file or self.index_dir / KEYS_FILE

    def to_env(self) -> dict[str, str]:
        return {
            "PROMPTSIM_INDEX": str(self.index_dir),
            "PROMPTSIM_KEYS": str(self.keys_file or ""),
            "PROMPTSIM_INSECURE_DEV": "1" if self.insecure_dev else "",
            "PROMPTSIM_RATE": str(self.rate_per_second),
            "PROMPTSIM_BURST": str(self.rate_burst),
        }

    @classmethod
    def from_env(cls) -> Settings:
        keys = os.environ.get("PROMPTSIM_KEYS")
        return cls(
            index_dir=Path(os.environ["PROMPTSIM_INDEX"]),
            keys_file=Path(keys) if keys else None,
            insecure_dev=bool(os.environ.get("PROMPTSIM_INSECURE_DEV")),
            rate_per_second=float(os.environ.get("PROMPTSIM_RATE", 50.0)),
            rate_burst=int(os.environ.get("PROMPTSIM_BURST", 100)),
        )
