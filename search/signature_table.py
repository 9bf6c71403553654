"""SignatureTable: every stored row's MinHash signatures in memory, for verifying LSH candidates.

A search verifies each LSH candidate (whole-prompt Jaccard, head/tail window Jaccard). For
a campaign query that is thousands of rows, and reading their signatures back from SQLite
was a third of a search at 100k prompts (p50 9 ms, p99 33 ms for up to 20,000 rows of
signals). Here they are one array lookup. The cost is RAM: 3 x num_perm x 4 bytes a prompt
(1.5 KB at 128 permutations: 150 MB at 100k prompts, 1.5 GB at 1M, against the LSHs'
~10 GB there). The table is rebuilt from the store on open, like nothing else it needs
no snapshot: SQLite stays the truth.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .signals import Signals

_INITIAL_CAPACITY = 1024


class SignatureTable:
    """Row -> (whole, head, tail) signatures; rows come and go as the store changes."""

    def __init__(self, num_perm: int):
        self._num_perm = num_perm
        self._slot_of: dict[int, int] = {}
        self._free: list[int] = []
        self._signatures = np.empty((_INITIAL_CAPACITY, 3, num_perm), dtype=np.uint32)
        self._used = 0  # slots ever handed out; freed ones are reused first

    def __len__(self) -> int:
        return len(self._slot_of)

    def insert_signals(self, rows: np.ndarray, signals: Signals) -> None:
        """Set the signatures of rows (a row already present is overwritten)."""
        row_list = [int(row) for row in rows]
        if self._free or any(row in self._slot_of for row in row_list) or len(set(row_list)) < len(row_list):
            slots = np.fromiter((self._slot_for(row) for row in row_list), dtype=np.int64, count=len(row_list))
        else:  # the bulk-ingest case: all new rows, no free slots: take the next ones at once
            self._reserve(self._used + len(row_list))
            slots = np.arange(self._used, self._used + len(row_list))
            self._slot_of.update(zip(row_list, slots.tolist()))
            self._used += len(row_list)
        self._signatures[slots, 0] = signals.signatures
        self._signatures[slots, 1:] = signals.windows

    def remove(self, rows: Iterable[int]) -> int:
        """Forget rows; returns how many were present."""
        removed = 0
        for row in rows:
            slot = self._slot_of.pop(int(row), None)
            if slot is not None:
                self._free.append(slot)
                removed += 1
        return removed

    def lookup(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the rows present, sorted; their signatures as (n, 3, num_perm): whole, head, tail)."""
        wanted = np.unique(np.asarray(rows, dtype=np.int64))
        slots = np.fromiter((self._slot_of.get(row, -1) for row in wanted.tolist()), dtype=np.int64, count=len(wanted))
        present = slots >= 0
        return wanted[present], self._signatures[slots[present]]

    def rows(self) -> np.ndarray:
        """Every row held, sorted (for consistency checks)."""
        return np.sort(np.fromiter(self._slot_of, dtype=np.int64, count=len(self._slot_of)))

    def _slot_for(self, row: int) -> int:
        slot = self._slot_of.get(row)
        if slot is not None:
            return slot
        if self._free:
            slot = self._free.pop()
        else:
            self._reserve(self._used + 1)
            slot = self._used
            self._used += 1
        self._slot_of[row] = slot
        return slot

    def _reserve(self, slots: int) -> None:
        """Grow by doubling (amortized O(1) a row) until `slots` slots fit."""
        if slots <= len(self._signatures):
            return
        capacity = len(self._signatures)
        while capacity < slots:
            capacity *= 2
        grown = np.empty((capacity, 3, self._num_perm), dtype=np.uint32)
        grown[: self._used] = self._signatures[: self._used]
        self._signatures = grown
