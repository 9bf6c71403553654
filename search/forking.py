"""Forked worker processes: both cores for large batch work, sharing what the parent loaded.

A forked worker shares the parent's loaded models and arrays copy-on-write and starts in
milliseconds; a spawned one re-imports and reloads everything. Fork is used where the platform
has it and Python is older than 3.12 (from 3.12 CPython warns about forking a process that runs
threads); callers fall back to one process, or to spawn, elsewhere.
"""

from __future__ import annotations

import gc
import multiprocessing
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.pool import Pool


def can_fork() -> bool:
    """Whether worker processes are forked here (see the module note)."""
    return "fork" in multiprocessing.get_all_start_methods() and sys.version_info < (3, 12)


@contextmanager
def forked_pool(workers: int) -> Iterator[Pool | None]:
    """A pool of `workers` forked processes, or None for one process or where fork is not used.

    The parent's heap is frozen first, so the workers' garbage collections do not touch (and
    copy) it page by page; a worker must not use a lock or connection the parent holds."""
    if workers <= 1 or not can_fork():
        yield None
        return
    gc.freeze()
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield pool
    finally:
        gc.unfreeze()
