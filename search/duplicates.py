"""DuplicateIndex: a thin wrapper over datasketch's MinHashLSH keyed by store row ids."""

from __future__ import annotations

import pickle
from collections.abc import Iterable

import numpy as np
from datasketch import MinHashLSH
from datasketch.lsh import _check_scheme_consistency
from datasketch.storage import DictListStorage

from .heap import gc_paused
from .minhash import MinHasher
from .signals import Signals


class DuplicateIndex:
    """LSH over MinHash signatures: which rows may have Jaccard above the threshold."""

    def __init__(self, hasher: MinHasher, threshold: float = 0.5, *, lsh: MinHashLSH | None = None):
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"LSH threshold {threshold} must be strictly between 0 and 1")
        self._hasher = hasher
        self.threshold = threshold
        self._lsh = lsh if lsh is not None else MinHashLSH(threshold=threshold, num_perm=hasher.num_perm)

    @property
    def bands(self) -> tuple[int, int]:
        """(bands, rows per band) datasketch chose for the threshold."""
        return int(self._lsh.b), int(self._lsh.r)

    def __len__(self) -> int:
        return int(self._lsh.keys.size())

    def insert(self, rows: np.ndarray, signatures: np.ndarray) -> None:
        """Insert each row's signature (rows already present are replaced).

        The band keys are cut from the whole signature matrix at once and written to the
        LSH's dict storages directly: exactly what datasketch's per-key insert writes
        (pinned by a test), at a fraction of its per-key cost, which made LSH inserts the
        largest part of bulk ingest. Other storage kinds take datasketch's own path.
        """
        row_list = rows.tolist()
        for row in row_list:
            if row in self._lsh.keys:
                self._lsh.remove(row)
        if not row_list:
            return
        lsh = self._lsh
        if not self._in_memory_dicts():
            with lsh.insertion_session() as session:
                for row, signature in zip(row_list, signatures, strict=True):
                    session.insert(row, self._hasher.lean(signature), check_duplication=False)
            return
        lsh._minhash_scheme = _check_scheme_consistency(
            getattr(lsh, "_minhash_scheme", None), self._hasher.lean(signatures[0])
        )
        swapped = _swapped(signatures)
        bands = [[band.tobytes() for band in swapped[:, lo:hi]] for lo, hi in lsh.hashranges]
        keys = lsh.keys._dict
        with gc_paused():  # hundreds of thousands of new buckets: see gc_paused
            for i, row in enumerate(row_list):
                keys[row].extend(band[i] for band in bands)
            for band, table in zip(bands, lsh.hashtables):
                buckets = table._dict
                for row, key in zip(row_list, band):
                    buckets[key].add(row)

    def insert_signals(self, rows: np.ndarray, signals: Signals) -> None:
        """Insert the whole-prompt signatures of rows."""
        self.insert(rows, signals.signatures)

    def remove(self, rows: Iterable[int]) -> int:
        """Remove rows; returns how many were present."""
        removed = 0
        for row in rows:
            if int(row) in self._lsh.keys:
                self._lsh.remove(int(row))
                removed += 1
        return removed

    def rows(self) -> np.ndarray:
        """Every stored row id (for consistency checks)."""
        return self.keys()

    def candidates(self, signature: np.ndarray) -> np.ndarray:
        """Rows that share at least one band with signature (likely Jaccard >= threshold), sorted.

        Reads the band buckets directly, as insert writes them: datasketch's query adds each
        member to a set in a Python loop, ~1 ms more a search at 100k prompts (campaign
        buckets hold hundreds of members). Same rows (pinned by a test).
        """
        lsh = self._lsh
        if not self._in_memory_dicts():
            return np.asarray(sorted(lsh.query(self._hasher.lean(signature))), dtype=np.int64)
        swapped = _swapped(signature)
        found: set[int] = set().union(
            *(table._dict.get(swapped[lo:hi].tobytes(), ()) for (lo, hi), table in zip(lsh.hashranges, lsh.hashtables))
        )
        rows = np.fromiter(found, dtype=np.int64, count=len(found))
        rows.sort()
        return rows

    def _in_memory_dicts(self) -> bool:
        """True for the LSH promptsim builds (in-memory dict storage, raw keys): the fast paths apply."""
        lsh = self._lsh
        return isinstance(lsh.keys, DictListStorage) and not lsh.prepickle and lsh.hashfunc is None

    def keys(self) -> np.ndarray:
        """Every stored key."""
        return np.asarray(sorted(self._lsh.keys.keys()), dtype=np.int64)

    def to_bytes(self) -> bytes:
        with gc_paused():
            return pickle.dumps(self._lsh, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, payload: bytes, hasher: MinHasher, threshold: float) -> DuplicateIndex:
        # Read only from the index directory itself, after its checksum verified (snapshot.py).
        with gc_paused():
            lsh = pickle.loads(payload)  # noqa: S301
        return cls(hasher, threshold, lsh=lsh)


class WindowIndex(DuplicateIndex):
    """LSH over head and tail window signatures; key 2*row is a row's head, 2*row+1 its tail."""

    def insert_signals(self, rows: np.ndarray, signals: Signals) -> None:
        keys, signatures = signals.window_keys(rows)
        self.insert(keys, signatures)

    def remove(self, rows: Iterable[int]) -> int:
        return super().remove(key for row in rows for key in (2 * int(row), 2 * int(row) + 1)) // 2

    def rows(self) -> np.ndarray:
        return np.unique(self.keys() // 2)

    def window_candidates(self, windows: np.ndarray) -> np.ndarray:
        """Rows whose head matches the query's head, or whose tail matches its tail."""
        heads = self.candidates(windows[0])
        tails = self.candidates(windows[1])
        return np.union1d(heads[heads % 2 == 0] // 2, tails[tails % 2 == 1] // 2)


def _swapped(signatures: np.ndarray) -> np.ndarray:
    """Hash values byte-swapped: a band's slice of them, as bytes, is datasketch's band key."""
    return np.ascontiguousarray(signatures, dtype=np.uint32).byteswap()
