"""Candidate-pair machinery: the bucketed kNN used at scale agrees with exact search."""

import numpy as np

from indexer.graph import _BucketKnn, _flat_knn, mutual_knn_edges


def clustered(n: int, d: int = 48, centers: int = 60, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, d)).astype(np.float32)
    x = c[rng.integers(centers, size=n)] + 0.5 * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_bucketed_knn_matches_exact_search():
    x = clustered(6000)
    rows = np.arange(0, 6000, 7)
    approx_ids, approx_scores = _BucketKnn(x, bucket_size=500).search(rows, 11)
    exact_ids, exact_scores = _flat_knn(x).search(rows, 11)
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
    import indexer.graph

    x = clustered(4000, centers=5, seed=2)  # few, crowded buckets: many blocks each
    rows = np.arange(4000)
    whole = _BucketKnn(x, bucket_size=1000).search(rows, 11)
    monkeypatch.setattr(indexer.graph, "_GRAM_ENTRIES", 5000)
    blocked = _BucketKnn(x, bucket_size=1000).search(rows, 11)
    assert np.array_equal(whole[0], blocked[0]) and np.array_equal(whole[1], blocked[1])
