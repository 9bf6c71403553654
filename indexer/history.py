"""A day against the history: the window's prompts and, for each, its nearest earlier siblings.

A nightly dedup of one day alone sees a campaign's day only: 55,000 prompts of a 4M-prompt index,
without the weeks of siblings that make a cluster's spread, accounts and first-seen date. A full
dedup of the whole history every night costs ~17 minutes a million prompts. In between, the
day's prompts are looked up in the index's own structures, as a search looks a query up: the
whole-prompt LSH, the head/tail window LSH and FAISS. The rows found (at most `neighbours` per
prompt and per structure) join the window, and the usual dedup runs over that set, verifying
every pair itself. Clusters then hold the day's prompts with their history, and nothing that
is not connected to the day.

Where a prompt has more candidates than that, it takes the oldest and the newest (so a
cluster's first and last seen are its whole history's) and a random sample of the rest, seeded
by its row: each of a campaign's day prompts samples other members, so the history drawn in
grows with the day's volume (a campaign sending 5,000 prompts today brings up to 100,000 of its
earlier ones), while a popular prompt seen once today brings 20.

Rejected: verifying candidates here (the signature table is 1.5 KB a prompt, 6 GB at 4M prompts,
and the dedup's edge step verifies the same pairs anyway); taking every LSH candidate (a
template sent 400,000 times would pull all of them in for each of its members); taking the
newest `neighbours` (every day prompt of a campaign then draws the same few rows: its
account count and spread came out as a few days', not its history's).
"""

from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

from search.index import PromptIndex

logger = logging.getLogger(__name__)

NEIGHBOURS = 20  # per prompt and per structure (whole LSH, window LSH, FAISS)
# Bucket entries gathered per LSH lookup before the sample of NEIGHBOURS is drawn from them: a
# templated prompt's buckets hold millions at 4M prompts (BandTable.query keeps each bucket's
# oldest and newest whatever the limit, so first and last seen stay the history's).
CANDIDATES = 2_000
_BATCH = 2_000


def some_of(candidates: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """At most count of the sorted candidates: the first and the last, and a random sample between."""
    if len(candidates) <= count:
        return candidates
    middle = rng.choice(len(candidates) - 2, count - 2, replace=False) + 1
    return candidates[np.concatenate(([0, len(candidates) - 1], middle))]


def with_history(
    index: PromptIndex,
    since: float | None,
    until: float | None,
    *,
    cosine: float,
    neighbours: int = NEIGHBOURS,
    progress: bool = False,
) -> tuple[np.ndarray, int]:
    """(rows of [since, until) and up to `neighbours` siblings of each from the whole index, sorted;
    how many of them are the window's own).

    cosine: the raw (backend's own) cosine a FAISS neighbour needs: the dedup's paraphrase edge.
    """
    day = index.store.window(since, until)[0]
    found = [day]
    manifest = index.manifest
    batches = range(0, len(day), _BATCH)
    for start in tqdm(batches, desc="history", unit="batch", disable=not progress):
        rows, signals = index.store.signals(day[start : start + _BATCH], manifest.dim, manifest.settings.num_perm)
        nearest = index.vectors.search(signals.vectors, neighbours + 1)  # +1: itself
        found.append(nearest.ids[(nearest.ids >= 0) & (nearest.scores >= np.float32(cosine))])
        for i, row in enumerate(rows.tolist()):
            rng = np.random.default_rng(row)
            whole = index.lsh.candidates(signals.signatures[i], CANDIDATES)
            found.append(some_of(whole, neighbours, rng))
            if signals.has_windows[i]:
                windowed = index.window_lsh.window_candidates(signals.windows[i], CANDIDATES)
                found.append(some_of(windowed, neighbours, rng))
    rows = np.unique(np.concatenate(found))
    logger.info("history: %d prompts in the window, %d with their siblings", len(day), len(rows))
    return rows, len(day)
