"""The documented error tree of promptsim.

* PromptSimError        - base class; every edge converts it once (CLI message, HTTP JSON body)
  x IndexNotFound       - no index at the path given
  x IndexMismatch       - index built with other settings (model, dimension, num_perm, format)
  x IndexCorrupt        - an index file is unreadable or disagrees with the store
  x IndexLocked         - another process is writing to the index
  x BadRecord           - an input record is invalid (raised only in --strict mode)
  x PromptNotFound      - no stored prompt with that id

Bad arguments raise the builtin ValueError, as in datasketch.
"""

from __future__ import annotations


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


class PromptNotFound(PromptSimError):
    """No stored prompt has the id given."""


class BadRecord(PromptSimError):
    """An input record is invalid; carries where it was found."""

    def __init__(self, source: str, line: int, reason: str):
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason
