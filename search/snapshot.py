"""Checksummed snapshot files: one JSON header line, then the payload, replaced atomically.

Every derived structure (FAISS vectors, LSH tables) is saved this way with the store
watermark it reflects, so a reader can tell exactly which store changes to replay, and
a truncated or bit-flipped file is refused instead of served.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from .errors import IndexCorrupt

_RECOVER = "restore the last snapshot, or run 'promptsim rebuild --index DIR' to regenerate it from the store"


class Sink(Protocol):
    """Where a structure writes its payload: a stream that can only be written to."""

    def write(self, data: bytes | memoryview, /) -> int: ...


Payload = bytes | memoryview | Callable[[Sink], None]


def write_snapshot(path: Path, header: dict[str, Any], payload: Payload) -> None:
    """Write header + payload to path atomically (temp file, fsync, rename, fsync dir).

    payload: the bytes, or a function that writes them to a sink, so a large structure is saved
    without a copy of it in memory (at a million prompts FAISS's and the LSHs' bytes were ~1 GB
    beside the structures, at the end of an ingest). The header holds the payload's checksum and
    length, so it is written last, over a placeholder line of its width: JSON allows the spaces
    that pad it, and a reader sees only the finished file, renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            placeholder = _header_line({**header, "sha256": "0" * 64, "bytes": 10**18})
            handle.write(placeholder)
            sink = _Hashing(handle)
            if callable(payload):
                payload(sink)
            else:
                sink.write(payload)
            line = _header_line({**header, "sha256": sink.digest.hexdigest(), "bytes": sink.size})
            handle.seek(0)
            handle.write(line[:-1].ljust(len(placeholder) - 1) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk stays no fuller than before the attempt
        raise
    fsync_dir(path.parent)


def _header_line(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True).encode() + b"\n"


class _Hashing:
    """A write-only stream that checksums and counts what passes through to the file. It has no
    seek or tell on purpose: a zip writer (np.savez) then streams instead of going back to patch
    sizes into bytes already checksummed."""

    def __init__(self, handle: BinaryIO):
        self._handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes | memoryview, /) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self._handle.write(data)

    def flush(self) -> None:
        self._handle.flush()

    def read(self, size: int = -1, /) -> bytes:  # np.savez takes only objects that have one
        raise io.UnsupportedOperation("a snapshot sink is written, never read")


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
