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

Bad arguments raise the builtin ValueError, as in datasketch.
"""

from __future__ import annotations

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
