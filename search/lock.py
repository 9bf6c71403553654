"""An index directory's write lock: one writer at a time (flock on DIR/write.lock), readers never wait."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import IndexLocked
from .manifest import LOCK, read_manifest


@contextmanager
def write_lock(path: Path, timeout: float = 30.0) -> Iterator[None]:
    """Hold an index directory's write lock (what writers, purges and restores take)."""
    fd = acquire_lock(path, False, timeout=timeout)
    try:
        yield
    finally:
        os.close(fd)


def acquire_lock(path: Path, create: bool, *, timeout: float = 0.0) -> int:
    """flock the directory's lock file, waiting up to timeout seconds."""
    if create:
        path.mkdir(parents=True, exist_ok=True)
    elif not path.is_dir():
        read_manifest(path)  # raises IndexNotFound with the fix
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise IndexLocked(f"another promptsim process is writing to {path}; wait for it to finish") from None
            time.sleep(0.01)
