"""The LSH wrapper's bulk insert writes exactly what datasketch's own insert writes."""

import numpy as np
from datasketch import MinHashLSH

from search.duplicates import DuplicateIndex, WindowIndex
from search.minhash import MinHasher


def test_bulk_insert_matches_datasketch_insert_key_for_key():
    hasher = MinHasher()
    rng = np.random.default_rng(0)
    signatures = rng.integers(0, 2**32, (2000, 128), dtype=np.uint32)
    signatures[100:150] = signatures[7]  # whole buckets shared
    signatures[300:320, :40] = signatures[8, :40]  # some bands shared
    rows = np.arange(2000, dtype=np.int64) * 5
    ours = DuplicateIndex(hasher, 0.5)
    ours.insert(rows[:1200], signatures[:1200])
    ours.insert(rows[1000:], signatures[1000:])  # 200 rows inserted again: replaced, not doubled
    reference = MinHashLSH(threshold=0.5, num_perm=128)
    for row, signature in zip(rows.tolist(), signatures):
        reference.insert(row, hasher.lean(signature))
    assert ours._lsh.keys._dict == reference.keys._dict
    for mine, theirs in zip(ours._lsh.hashtables, reference.hashtables):
        assert dict(mine._dict) == dict(theirs._dict)
    for probe in (7, 8, 1500):
        query = hasher.lean(signatures[probe])
        assert sorted(ours._lsh.query(query)) == sorted(reference.query(query))
    assert set(ours.candidates(signatures[7]).tolist()) >= {35, *(5 * i for i in range(100, 150))}


def test_candidates_read_from_the_buckets_are_datasketch_query_results():
    hasher = MinHasher()
    rng = np.random.default_rng(2)
    signatures = rng.integers(0, 2**32, (3000, 128), dtype=np.uint32)
    signatures[:400, :64] = signatures[400, :64]  # a campaign: 400 rows share half their bands
    signatures[500:510] = signatures[511]
    ours = DuplicateIndex(hasher, 0.5)
    ours.insert(np.arange(3000, dtype=np.int64), signatures)
    probes = np.concatenate((signatures[[0, 400, 511, 2999]], rng.integers(0, 2**32, (3, 128), dtype=np.uint32)))
    sizes = []
    for probe in probes:
        found = ours.candidates(probe)
        assert found.dtype == np.int64 and found.tolist() == sorted(ours._lsh.query(hasher.lean(probe)))
        sizes.append(len(found))
    assert sizes[:3] == [401, 401, 11] and sizes[3] >= 1 and sizes[4:] == [0, 0, 0]


def test_reinserting_a_row_with_a_new_signature_drops_its_old_buckets():
    hasher = MinHasher()
    rng = np.random.default_rng(1)
    old, new = rng.integers(0, 2**32, (2, 128), dtype=np.uint32)
    windows = WindowIndex(hasher, 0.5)
    windows.insert(np.array([10]), old[None])
    windows.insert(np.array([10]), new[None])
    assert windows.candidates(old).tolist() == [] and windows.candidates(new).tolist() == [10]
    assert len(windows) == 1
