"""Candidate-pair machinery: the bucketed kNN used at scale agrees with exact search."""

import numpy as np

from indexer.knn import BucketKnn, ExactKnn, mutual_knn_edges


def clustered(n: int, d: int = 48, centers: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, d)).astype(np.float32)
    x = c[rng.integers(centers, size=n)] + 0.5 * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_bucketed_knn_matches_exact_search():
    x = clustered(6000)
    rows = np.arange(0, 6000, 7)
    approx_ids, approx_scores = BucketKnn(x, bucket_size=500).search(rows, 11)
    exact_ids, exact_scores = ExactKnn(x).search(rows, 11)
    recall = np.mean([len(set(a) & set(e)) / 11 for a, e in zip(approx_ids, exact_ids)])
    assert recall >= 0.98
    assert (approx_scores[:, 0] >= exact_scores[:, 0] - 1e-5).mean() >= 0.99  # the best hit is found


def test_mutual_edges_agree_between_exact_and_bucketed():
    x = clustered(5000, seed=1)
    exact = mutual_knn_edges(x, 10, 0.9, vector_index="flat")
    approx = mutual_knn_edges(x, 10, 0.9, vector_index="ivf")
    a = set(zip(exact.left.tolist(), exact.right.tolist()))
    b = set(zip(approx.left.tolist(), approx.right.tolist()))
    assert len(a) > 1000 and len(a & b) / len(a) >= 0.97
    assert (approx.weight >= 0.9).all()


def test_bucketed_knn_in_blocks_of_rows_gives_the_same_neighbours(monkeypatch):
    import indexer.knn

    x = clustered(4000, centers=5, seed=2)  # few, crowded buckets: many blocks each
    rows = np.arange(4000)
    whole = BucketKnn(x, bucket_size=1000).search(rows, 11)
    monkeypatch.setattr(indexer.knn, "_GRAM_ENTRIES", 5000)
    blocked = BucketKnn(x, bucket_size=1000).search(rows, 11)
    # another block shape moves the last bits, so near-ties may swap places (within k, or at its edge)
    assert np.abs(whole[1] - blocked[1]).max() < 1e-6
    changed = sum(set(a) != set(b) for a, b in zip(whole[0].tolist(), blocked[0].tolist()))
    assert changed <= len(rows) // 1000


def test_knn_is_bit_identical_whatever_the_thread_count(monkeypatch):
    """What lets a one-thread Ray task find the edges a many-core node finds."""
    import indexer.knn

    x = clustered(6000, centers=30, seed=3)
    x[100:140] = x[99]  # exact ties
    found = {}
    for threads in (1, 2, 3):
        monkeypatch.setattr(indexer.knn, "_threads", lambda threads=threads: threads)
        for kind in ("flat", "ivf"):
            edges = mutual_knn_edges(x, 10, 0.9, vector_index=kind)
            found[threads, kind] = (edges.left.tolist(), edges.right.tolist(), edges.weight.tolist())
    for kind in ("flat", "ivf"):
        assert len(found[1, kind][0]) > 1000
        assert found[1, kind] == found[2, kind] == found[3, kind]


def test_components_match_scipy_and_label_each_by_its_smallest_node():
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from indexer.graph import components

    rng = np.random.default_rng(5)
    n = 300
    pairs = rng.integers(0, n, size=(200, 2))
    labels = components(n, pairs)
    _, reference = connected_components(coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)))
    same = labels[:, None] == labels[None, :]
    assert (same == (reference[:, None] == reference[None, :])).all()
    assert all(labels[i] == np.flatnonzero(labels == labels[i]).min() for i in range(n))
    assert components(3, np.zeros((0, 2), np.int64)).tolist() == [0, 1, 2]


def test_band_pairs_are_the_distinct_sorted_pairs_of_unique_axis_0():
    from indexer.graph import _distinct_pairs, band_pairs

    rng = np.random.default_rng(5)
    for n in (1, 2, 50, 3000):
        pairs = rng.integers(0, n, (int(rng.integers(0, 5000)), 2))
        want = np.unique(pairs, axis=0)
        got = _distinct_pairs(pairs, n)
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
    signatures = rng.integers(0, 3, (500, 8)).astype(np.uint32)  # many shared bands
    pairs = band_pairs(signatures, 4, 2)
    assert len(pairs) and np.array_equal(pairs, np.unique(pairs, axis=0))
    assert (pairs[:, 0] < pairs[:, 1]).all()
