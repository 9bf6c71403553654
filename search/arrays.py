"""Small numpy helpers shared by the in-memory structures and the search path.

Sorted sets of row ids (LSH candidates, verified rows) and row-indexed columns that grow
as the store hands out new rows.
"""

from __future__ import annotations

import numpy as np


def union_of_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.union1d of two sorted, unique arrays, 9x faster at search sizes (~1,000 rows: 18 against 160 us).

    union1d hashes or sorts from scratch; a stable sort finds the two runs and merges them.
    """
    both = np.concatenate((a, b))
    both.sort(kind="stable")
    return both[np.concatenate(([True], both[1:] != both[:-1]))] if len(both) else both


def union_of_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted union of two arrays of row ids (each unique, in any order).

    Small ones are sorted (union_of_sorted); from 20,000 rows, marked in a flag array as long as
    the largest row: at 4M prompts a templated query has ~500,000 cosine siblings, and sorting
    them took ~60 ms of a search, the flags ~3 ms.
    """
    if len(a) + len(b) < 20_000:
        return union_of_sorted(np.sort(a), np.sort(b))
    flags = np.zeros(int(max(a.max(initial=-1), b.max(initial=-1))) + 1, dtype=bool)
    flags[a] = True
    flags[b] = True
    return np.flatnonzero(flags).astype(np.int64)


def among(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which values are in sorted_set (sorted and unique), by binary search: faster than np.isin here."""
    if not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values


def grown_to_fit(column: np.ndarray, index: int, fill: float) -> np.ndarray:
    """column itself if index fits, else a copy doubled in length until it does, new cells set to fill.

    Doubling keeps growth amortized O(1) a row while row ids climb one batch at a time.
    """
    if index < len(column):
        return column
    size = max(len(column), 1)
    while size <= index:
        size *= 2
    grown = np.full(size, fill, dtype=column.dtype)
    grown[: len(column)] = column
    return grown
