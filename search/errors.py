"""The documented error tree of promptsim.

* PromptSimError        - base class; every edge converts it once (CLI message, HTTP JSON body)
  x IndexNotFound       - no index at the path given
  x IndexMismatch       - index built with other settings (model, dimension, num_perm, format)
  x IndexCorrupt        - an index file is unreadable or disagrees with the store
  x IndexLocked         - another process is writing to the index
  x BadRecord           - an input record is invalid (raised only in --strict mode)
  x InputRejected       - an ingest stored nothing from a non-empty input, or skipped more than allowed
  x InvalidRequest      - a request (search, batch query) breaks the contract; also a ValueError
  x PromptNotFound      - no stored prompt with that id
  x StorageFailed       - the disk under the index is full or read-only; that write was not stored

Bad arguments raise the builtin ValueError, as in datasketch.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import Any


class PromptSimError(Exception):
    """Base class of every error promptsim raises on purpose."""


class IndexNotFound(PromptSimError):
    """No index directory (or no manifest in it) at the path given."""


class IndexMismatch(PromptSimError):
    """The index was built with settings that differ from the ones asked for."""


class IndexCorrupt(PromptSimError):
    """An index file cannot be read, or it disagrees with the store."""


class IndexLocked(PromptSimError):
    """Another process holds the index's write lock."""


class InputRejected(PromptSimError):
    """An ingest did not do what was asked: nothing stored from a non-empty input, or too much skipped.

    Whatever valid records there were are stored; report holds the counts (an IngestReport).
    """

    def __init__(self, message: str, report: Any = None):
        super().__init__(message)
        self.report = report


class InvalidRequest(PromptSimError, ValueError):
    """A request does not match the contract (promptsim/contract.py): detail lists (where, what) per problem."""

    def __init__(self, detail: list[tuple[list[str], str]]):
        problems = "; ".join(f"{'.'.join(loc) or 'request'}: {msg}" for loc, msg in detail)
        super().__init__(f"invalid request: {problems}")
        self.detail = detail


class PromptNotFound(PromptSimError):
    """No stored prompt has the id given."""


class BadRecord(PromptSimError):
    """An input record is invalid; carries where it was found."""

    def __init__(self, source: str, line: int, reason: str):
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


class StorageFailed(PromptSimError):
    """The disk under the index is full (full=True) or read-only: the operation failed, nothing was acknowledged.

    Whatever was acknowledged before stays intact: each batch is one store transaction, and
    the derived files are replaced whole. The edges answer 507 (full) or 503 (read-only).
    """

    _FULL = (errno.ENOSPC, errno.EDQUOT)
    _READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)

    def __init__(self, message: str, *, full: bool):
        super().__init__(message)
        self.full = full

    @classmethod
    def from_error(cls, err: BaseException) -> StorageFailed | None:
        """err as a StorageFailed when a full or read-only disk caused it (SQLite's or the OS's words), else None."""
        if isinstance(err, StorageFailed):
            return err
        text = str(err)
        if isinstance(err, sqlite3.OperationalError):  # a WAL database on a read-only disk cannot even be opened
            full = "disk is full" in text
            if not full and not any(w in text for w in ("readonly database", "read-only", "unable to open database")):
                return None
        elif isinstance(err, OSError) and err.errno in cls._FULL + cls._READ_ONLY:
            full = err.errno in cls._FULL
        else:
            return None
        if full:
            message = f"the disk holding the index is full ({text}); free space and retry"
        else:
            message = f"the index directory is read-only or not accessible ({text}); make it writable and retry"
        return cls(f"{message}: what failed was not stored, and everything stored before it is intact", full=full)
