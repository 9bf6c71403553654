"""Connected components of a distributed edge list: alternating large-star / small-star rounds.

Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014): each round is
two hash shuffles on the edge list, no task ever holds more than its partition, and after
O(log² n) rounds every component is a star around its smallest node. That star, (node,
smallest node), is the component label: a plain union-find would need every node in one
memory.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .shuffle import Table, partition_of, shuffle, split

logger = logging.getLogger(__name__)
MAX_ROUNDS = 64


def _directed(edges: Table, parts: int, mode: str) -> list[Table]:
    """Map: large-star keys both directions by source; small-star keys each edge by its larger end."""
    a, b = edges.get("a", np.zeros(0, np.int64)), edges.get("b", np.zeros(0, np.int64))
    if mode == "large":
        u, v = np.concatenate((a, b)), np.concatenate((b, a))
    else:
        u, v = np.maximum(a, b), np.minimum(a, b)
    keep = u != v
    u, v = u[keep], v[keep]
    return split({"u": u, "v": v}, partition_of(u, parts), parts)


def _star(edges: Table, mode: str) -> tuple[Table, np.ndarray]:
    """Reduce: one large- or small-star step on the edges of this partition's sources.

    large: each v > u in u's neighbourhood is linked to min(neighbourhood ∪ {u});
    small: u and each v < u of its neighbourhood are linked to min(neighbourhood ∪ {u}).
    Returns the new edges and (edge count, order-free checksum) to detect the fixed point.
    """
    if not edges or not len(edges["u"]):
        return {"a": np.zeros(0, np.int64), "b": np.zeros(0, np.int64)}, np.zeros(2, np.uint64)
    u, v = edges["u"], edges["v"]
    order = np.lexsort((v, u))
    u, v = u[order], v[order]
    starts = np.flatnonzero(np.concatenate(([True], u[1:] != u[:-1])))
    smallest = np.minimum(np.minimum.reduceat(v, starts), u[starts])
    m = np.repeat(smallest, np.diff(np.concatenate((starts, [len(u)]))))
    if mode == "large":
        keep = v > u
        a, b = v[keep], m[keep]
    else:
        a = np.concatenate((v, u[starts]))
        b = np.concatenate((m, smallest))
    keep = a != b
    pairs = np.unique(np.stack((a[keep], b[keep]), axis=1), axis=0) if keep.any() else np.zeros((0, 2), np.int64)
    check = np.asarray([len(pairs), int(np.bitwise_xor.reduce(_mix(pairs)) if len(pairs) else 0)], np.uint64)
    return {"a": pairs[:, 0], "b": pairs[:, 1]}, check


def _mix(pairs: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return pairs[:, 0].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) ^ pairs[:, 1].astype(np.uint64)


def connected_components(ray: Any, edge_refs: list[Any], parts: int) -> list[Any]:
    """Refs to star tables {"a": node, "b": smallest node of its component}, for every node with an edge."""
    current, previous = edge_refs, None
    for round_no in range(MAX_ROUNDS):
        for mode in ("large", "small"):
            out = shuffle(
                ray, _directed, [(ref, parts, mode) for ref in current], _star, parts, extra=(mode,), reduce_returns=2
            )
            current = [o[0] for o in out]
            checks = ray.get([o[1] for o in out])
        state = (int(sum(c[0] for c in checks)), int(np.bitwise_xor.reduce([c[1] for c in checks])))
        if state == previous:
            logger.info("components: converged after %d rounds", round_no + 1)
            return current
        previous = state
    raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
