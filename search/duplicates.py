"""DuplicateIndex: a thin wrapper over datasketch's MinHashLSH keyed by store row ids."""

from __future__ import annotations

import pickle
from collections.abc import Iterable

import numpy as np
from datasketch import MinHashLSH

from .minhash import MinHasher


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

    def __contains__(self, row: int) -> bool:
        return int(row) in self._lsh.keys

    def insert(self, rows: np.ndarray, signatures: np.ndarray) -> None:
        """Insert each row's signature (rows already present are replaced)."""
        with self._lsh.insertion_session() as session:
            for row, signature in zip(rows.tolist(), signatures, strict=True):
                if row in self._lsh.keys:
                    self._lsh.remove(row)
                session.insert(row, self._hasher.lean(signature), check_duplication=False)

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
        return np.asarray(sorted(self._lsh.keys.keys()), dtype=np.int64)

    def candidates(self, signature: np.ndarray) -> np.ndarray:
        """Rows that share at least one band with signature (likely Jaccard >= threshold)."""
        return np.asarray(sorted(self._lsh.query(self._hasher.lean(signature))), dtype=np.int64)

    def to_bytes(self) -> bytes:
        return pickle.dumps(self._lsh, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, payload: bytes, hasher: MinHasher, threshold: float) -> DuplicateIndex:
        # Read only from the index directory itself, after its checksum verified (snapshot.py).
        return cls(hasher, threshold, lsh=pickle.loads(payload))  # noqa: S301
