"""Deleting prompts by id or by account, from the store, FAISS, the LSHs and cluster member lists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from indexer.erasure import erase_account, erase_ids
from search.errors import PromptNotFound

from ._index import IndexLike, opened


@dataclass(frozen=True)
class Deleted:
    """How many prompts were deleted, the ids given that were not stored, and what the index holds now."""

    deleted: int
    missing: tuple[str, ...] = ()
    index: dict[str, int] = field(default_factory=dict)


def delete(index: IndexLike, *, ids: Sequence[str] = (), account_id: str | None = None) -> Deleted:
    """Delete the prompts with these ids, or every prompt of account_id (logged: a restore keeps them deleted).

    Raises PromptNotFound when nothing was deleted (no id stored, or the account has no
    prompts); when only some ids are stored those are deleted and the others listed in missing.
    """
    if bool(ids) == (account_id is not None):
        raise ValueError("give ids or account_id (one of the two)")
    with opened(index, writable=True, with_model=False) as found:
        missing: tuple[str, ...] = ()
        if account_id is not None:
            removed = erase_account(found, account_id)
            if not removed:
                raise PromptNotFound(f"no stored prompts of account {account_id!r}")
        else:
            stored = found.store.digests(list(ids))
            missing = tuple(dict.fromkeys(i for i in ids if i not in stored))
            if not stored:
                raise PromptNotFound(f"none of the ids given is stored: {', '.join(map(repr, missing[:10]))}")
            removed = erase_ids(found, list(stored))
        found.checkpoint()
        return Deleted(removed, missing, found.counts())
