"""Files only their owner may read (mode 600): promptsim's files hold prompts, keys and who read what."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

PRIVATE = 0o600


@contextmanager
def create_private(path: Path, *, exclusive: bool = False) -> Iterator[BinaryIO]:
    """Open path for writing as a new, truncated file with mode 600, whatever the umask or an old file's mode."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE)
    os.fchmod(fd, PRIVATE)  # an existing file keeps its mode on open: set it
    with os.fdopen(fd, "wb") as handle:
        yield handle


def write_private(path: Path, data: bytes, *, exclusive: bool = False, sync: bool = False) -> None:
    """Write data to path (mode 600); exclusive: fail with FileExistsError if it exists."""
    with create_private(path, exclusive=exclusive) as handle:
        handle.write(data)
        if sync:
            handle.flush()
            os.fsync(handle.fileno())


def append_private(path: Path) -> BinaryIO:
    """Open path for appending (created with mode 600 when missing)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE)
    os.fchmod(fd, PRIVATE)
    return os.fdopen(fd, "ab")


def touch_private(path: Path) -> Path:
    """Create path empty with mode 600 if it is missing (before SQLite opens it, which would use the umask).

    An existing file is never opened here: closing any descriptor of a database file drops every
    POSIX lock this process holds on it, SQLite's included, and another process closing its last
    connection would then delete the WAL this process still writes to (its commits lost to others).
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))
    except FileExistsError:
        pass
    os.chmod(path, PRIVATE)
    return path
