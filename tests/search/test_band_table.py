"""BandTable against datasketch's MinHashLSH: the same keys for every query, through inserts,
replacements, removals and merges of its runs; and the memory it promises."""

import numpy as np
import pytest
from datasketch import MinHashLSH

import search.band_table as band_table
from search.band_table import BandTable
from search.minhash import MinHasher

PERMS = 128


def near_duplicates(rng: np.random.Generator, n: int, families: int = 40) -> np.ndarray:
    """n signatures in a few families: members share each position with their family's base at p=0.7."""
    bases = rng.integers(0, 2**32, size=(families, PERMS), dtype=np.uint32)
    family = rng.integers(0, families, size=n)
    noise = rng.integers(0, 2**32, size=(n, PERMS), dtype=np.uint32)
    keep = rng.random((n, PERMS)) < 0.7
    return np.where(keep, bases[family], noise).astype(np.uint32)


class Reference:
    """datasketch's MinHashLSH with the same keys, for comparison."""

    def __init__(self) -> None:
        self.lsh = MinHashLSH(threshold=0.5, num_perm=PERMS)
        self.hasher = MinHasher(num_perm=PERMS)

    def insert(self, keys, signatures) -> None:
        for key, signature in zip(keys.tolist(), signatures):
            if key in self.lsh.keys:
                self.lsh.remove(key)
            self.lsh.insert(key, self.hasher.lean(signature))

    def remove(self, keys) -> None:
        for key in keys.tolist():
            if key in self.lsh.keys:
                self.lsh.remove(key)

    def query(self, signature) -> list[int]:
        return sorted(self.lsh.query(self.hasher.lean(signature)))


def assert_same(ours: BandTable, theirs: Reference, probes: np.ndarray) -> None:
    assert len(ours) == len(theirs.lsh.keys.keys())
    assert ours.keys().tolist() == sorted(theirs.lsh.keys.keys())
    for probe in probes:
        assert ours.query(probe).tolist() == theirs.query(probe)


@pytest.fixture
def small_merges(monkeypatch):
    monkeypatch.setattr(band_table, "_GROWTH", 2)  # runs merge less often: queries meet several runs


def test_uses_datasketch_banding():
    reference = Reference()
    ours = BandTable(reference.lsh.b, reference.lsh.r)
    assert (ours.bands, ours.rows) == (25, 5)  # datasketch's choice for 0.5 at 128 permutations


def test_same_keys_as_datasketch_for_every_query(small_merges):
    rng = np.random.default_rng(0)
    signatures = near_duplicates(rng, 600)
    reference = Reference()
    ours = BandTable(reference.lsh.b, reference.lsh.r)
    for lo in range(0, 600, 97):  # uneven batches: several runs at query time
        keys = np.arange(lo, min(lo + 97, 600))
        ours.insert(keys, signatures[keys])
        reference.insert(keys, signatures[keys])
    probes = np.concatenate((signatures[:50], near_duplicates(rng, 50)))
    assert_same(ours, reference, probes)
    assert sum(len(ours.query(p)) for p in probes) > 300  # the families really collide (~4.6 keys a probe)


def test_replacements_and_removals_stay_in_step(small_merges):
    rng = np.random.default_rng(1)
    reference = Reference()
    ours = BandTable(reference.lsh.b, reference.lsh.r)
    first = near_duplicates(rng, 300)
    ours.insert(np.arange(300), first)
    reference.insert(np.arange(300), first)
    for step in range(6):
        keys = np.unique(rng.integers(0, 400, size=60))
        replacement = near_duplicates(rng, len(keys))
        ours.insert(keys, replacement)  # some new keys, some replaced signatures
        reference.insert(keys, replacement)
        gone = np.unique(rng.integers(0, 400, size=30))
        assert ours.remove(gone) == sum(int(k) in reference.lsh.keys for k in gone.tolist())
        reference.remove(gone)
        if step % 2:
            ours.merge()
        assert_same(ours, reference, np.concatenate((first[:40], replacement[:10])))


def test_a_removed_key_is_never_returned_even_before_a_merge():
    rng = np.random.default_rng(2)
    signatures = near_duplicates(rng, 20, families=1)
    ours = BandTable(25, 5)
    ours.insert(np.arange(20), signatures)
    ours.merge()
    ours.insert(np.arange(20, 40), signatures)  # copies of the same signatures, in a run of their own
    ours.remove(np.array([3, 25]))
    found = ours.query(signatures[3])
    assert 3 not in found.tolist() and 25 not in found.tolist() and 4 in found.tolist() and 24 in found.tolist()
    assert 3 not in ours and 4 in ours and 25 not in ours and 24 in ours


def test_bad_keys_are_refused():
    ours = BandTable(25, 5)
    signature = np.zeros((2, PERMS), np.uint32)
    with pytest.raises(ValueError, match="twice"):
        ours.insert(np.array([1, 1]), signature)
    with pytest.raises(ValueError, match="non-negative"):
        ours.insert(np.array([-1, 2]), signature)


def test_entries_take_16_bytes_each_from_their_insert_on():
    import tracemalloc

    rng = np.random.default_rng(3)
    n = 20_000
    signatures = near_duplicates(rng, n, families=500)
    ours = BandTable(25, 5)
    tracemalloc.start()
    for lo in range(0, n, 256):  # as ingest inserts: batch by batch, never merged by hand
        ours.insert(np.arange(lo, min(lo + 256, n)), signatures[lo : lo + 256])
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # 8-byte hash + 8-byte key per band entry, plus a byte a key for its run (rounded up on growth)
    assert ours.nbytes() <= 25 * 16 * n + 2 * n
    assert held <= 1.05 * ours.nbytes()  # nothing else: no Python object per entry
    assert len(ours._runs) <= 8  # each run at least four times the next


@pytest.mark.parametrize("batch", [6000, 700], ids=["one run", "several runs"])
def test_a_limited_query_is_a_sample_of_the_full_answer_with_each_buckets_oldest_and_newest(batch):
    rng = np.random.default_rng(9)
    signatures = near_duplicates(rng, 6000, families=3)  # three big buckets per band
    reference = Reference()
    table = BandTable(reference.lsh.b, reference.lsh.r)
    for lo in range(0, 6000, batch):
        table.insert(np.arange(lo, min(lo + batch, 6000)), signatures[lo : lo + batch])
    table.remove(np.arange(0, 6000, 7))
    table.merge()  # (before a merge, a bucket's first entry may be a removed key: then it is skipped)
    table.insert(np.arange(6000, 6010), signatures[:10])  # and a newest run on top
    assert len(table._runs) == 2
    for probe in signatures[:5]:
        full = table.query(probe)
        limited = table.query(probe, limit=300)
        assert len(full) > 500 and 0 < len(limited) <= 300 + 2 * table.bands
        assert np.isin(limited, full).all() and np.array_equal(limited, np.unique(limited))  # sorted, present
        assert (limited[0], limited[-1]) == (full[0], full[-1])  # the oldest and the newest
        assert np.array_equal(table.query(probe, limit=len(full) * table.bands), full)  # a limit not reached
        assert np.array_equal(table.query(probe, limit=300), limited)  # seeded: the same sample each time
