"""A small hash shuffle over Ray tasks: columnar numpy tables split into partitions and regrouped.

Tables are dicts of equal-length numpy columns. A map task returns one table per partition
(`num_returns`), a reduce task concatenates its partition from every map task; both are
plain Ray tasks, retried when a worker dies, so a killed worker reruns only its task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Table = dict[str, np.ndarray]
_MIX = np.uint64(0x9E3779B97F4A7C15)
RETRIES = 5


def concat(tables: Sequence[Table]) -> Table:
    """One table of all rows, in the order given."""
    tables = [t for t in tables if t]
    if not tables:
        return {}
    return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}


def partition_of(keys: np.ndarray, parts: int) -> np.ndarray:
    """Partition of each int64 key (a multiplicative hash, so runs of ids spread evenly)."""
    mixed = keys.astype(np.uint64) * _MIX
    return ((mixed >> np.uint64(33)) % np.uint64(parts)).astype(np.int64)


def split(table: Table, by: np.ndarray, parts: int) -> list[Table]:
    """The rows of table in parts tables, row i going to partition by[i] (order kept within each)."""
    if not table or not len(by):
        return [{k: v[:0] for k, v in table.items()} for _ in range(parts)]
    order = np.argsort(by, kind="stable")
    bounds = np.searchsorted(by[order], np.arange(parts + 1))
    return [{k: v[order[bounds[p] : bounds[p + 1]]] for k, v in table.items()} for p in range(parts)]


def map_task(fn: Callable[..., list[Table]], *args: Any) -> Any:
    out = fn(*args)
    return out[0] if len(out) == 1 else tuple(out)


def _reduce_task(fn: Callable[..., Any], extra: tuple[Any, ...], *pieces: Table) -> Any:
    out = fn(concat(pieces), *extra)
    return out[0] if isinstance(out, list) and len(out) == 1 else out


def shuffle(
    ray: Any,
    map_fn: Callable[..., list[Table]],
    inputs: Sequence[tuple[Any, ...]],
    reduce_fn: Callable[..., Any],
    parts: int,
    *,
    extra: tuple[Any, ...] = (),
    reduce_returns: int = 1,
) -> list[Any]:
    """map_fn(*args) for each args in inputs returns `parts` tables; reduce_fn(table, *extra) runs per partition.

    Returns the reduce tasks' object refs, one (or a list of reduce_returns) per partition.
    """
    mapper = ray.remote(map_task).options(num_returns=parts, max_retries=RETRIES)
    mapped = [mapper.remote(map_fn, *args) for args in inputs]
    if parts == 1:
        mapped = [[m] for m in mapped]
    reducer = ray.remote(_reduce_task).options(num_returns=reduce_returns, max_retries=RETRIES)
    return [reducer.remote(reduce_fn, extra, *(m[p] for m in mapped)) for p in range(parts)]
