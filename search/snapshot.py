"""Checksummed snapshot files: one JSON header line, then the payload, replaced atomically.

Every derived structure (FAISS vectors, LSH tables) is saved this way with the store
watermark it reflects, so a reader can tell exactly which store changes to replay, and
a truncated or bit-flipped file is refused instead of served.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .errors import IndexCorrupt

_RECOVER = "restore the last snapshot, or run 'promptsim rebuild --index DIR' to regenerate it from the store"


def write_snapshot(path: Path, header: dict[str, Any], payload: bytes | memoryview) -> None:
    """Write header + payload to path atomically (temp file, fsync, rename, fsync dir)."""
    header = {**header, "sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(json.dumps(header, sort_keys=True).encode() + b"\n")
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk stays no fuller than before the attempt
        raise
    fsync_dir(path.parent)


def read_snapshot(path: Path) -> tuple[dict[str, Any], bytes]:
    """Read and verify a snapshot; raise IndexCorrupt (with how to recover) if it is damaged."""
    try:
        with open(path, "rb") as handle:
            header = json.loads(handle.readline())
            payload = handle.read()
    except (OSError, ValueError) as err:
        raise IndexCorrupt(f"{path} is unreadable ({err}); {_RECOVER}") from err
    if not isinstance(header, dict) or len(payload) != header.get("bytes"):
        raise IndexCorrupt(f"{path} is truncated; {_RECOVER}")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise IndexCorrupt(f"{path} fails its checksum; {_RECOVER}")
    return header, payload


def fsync_dir(directory: Path) -> None:
    """Make a rename in directory durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
