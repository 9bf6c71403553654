"""Wrapper mining: the fixed text each prompt shares with many others, wherever it sits.

A campaign repeats an instruction (its wrapper) around varying slot content. In real traffic
slot content repeats too — popular prompts are pasted by many users, a passage is reused under
several templates — so "recurs across many accounts" alone would call every reused text a
wrapper. What sets a wrapper apart is that it recurs around *different* content:

1. Prompts are collapsed into near-copy groups (whole-prompt MinHash Jaccard >= 0.8, the
   band join dedup already runs): a text pasted by fifty users counts once.
2. A shingle's *support* is the number of groups holding it, and its *accounts* the number
   of accounts sending it. A reused slot has the support of the few templates it sits in; a
   wrapper, the number of distinct slots it wraps.
3. In each prompt, tokens covered by shingles whose support is at least `min_support`, at
   least `contrast` times the prompt's own baseline (its 20th-percentile token support: the
   slot's level), and sent by at least `min_accounts` accounts, form candidate spans.
4. The primary span is the one anchored at the start or end of the prompt (prefixes and
   suffixes), else the longest; other spans join it when their support is within `keep_ratio`
   of the primary's (a second fixed part of the same template) — a common phrase inside the
   slot ("your task is to", used by thousands) has another support and stays out.

Structured payloads are canonicalized first (search/segments.py), so reordered JSON/YAML
fields repeat the same fixed lines; scripts without spaces are tokenized per character.
Only the first `head_tokens` and last `tail_tokens` tokens of a long prompt are mined.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from multiprocessing.pool import Pool

import numpy as np

from search.arrays import hashes_in
from search.forking import forked_pool
from search.segments import Tokenizer, Tokens
from search.wrappers import (
    Region,
    Span,
    Vocabulary,
    WrapperSettings,
    mined,
    span_facts,
    spans_of_many,
    wording_key,
    wrapper_text,
)

TextsOf = Callable[[np.ndarray], list[str]]  # window positions -> raw texts


@dataclass
class Wrappers:
    """Per window position: the wrapper text ('' if none), its shingles, and the share of the prompt it covers."""

    text: list[str]
    shingles: list[np.ndarray]
    coverage: np.ndarray
    support: np.ndarray  # the primary span's median support (0 if none)
    anchored: np.ndarray  # bool: the wrapper touches the start or end of the prompt
    vocabulary: Vocabulary

    def has(self) -> np.ndarray:
        return np.asarray([bool(t) for t in self.text])


PARALLEL_MIN_PROMPTS = 20_000  # below this a fork costs more than the second core saves
PARALLEL_BATCH_MIN = 5_000  # prompts in one shingle_reader call worth its workers


def mine_wrappers(
    texts_of: TextsOf,
    n: int,
    accounts: np.ndarray,
    groups: np.ndarray,
    settings: WrapperSettings = WrapperSettings(),
    *,
    workers: int | None = None,
    parallel_min: int = PARALLEL_MIN_PROMPTS,
) -> Wrappers:
    """Wrappers of the n window prompts; accounts and near-copy groups are aligned with positions.

    Two passes over the texts: the first tokenizes and keeps each prompt's mined shingles (in
    order) while counting support; the second finds spans from those shingles alone and
    tokenizes again (for the words) only the first prompt of each distinct wrapper wording. From
    PARALLEL_MIN_PROMPTS prompts both passes tokenize on `workers` forked processes (default: up
    to two), in order, so the result is the same as in one process: 1.4x faster at 45k prompts,
    where tokenizing is most of the time, 9% at a million, where counting support here is."""
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    with forked_pool(workers if n >= parallel_min else 1) as pool:
        return _mine(texts_of, n, accounts, groups, settings, pool)


def _mine(
    texts_of: TextsOf, n: int, accounts: np.ndarray, groups: np.ndarray, settings: WrapperSettings, pool: Pool | None
) -> Wrappers:
    regions: list[list[Region]] = []
    sizes = np.zeros(n, np.int64)
    for lo in range(0, n, settings.chunk):
        positions = np.arange(lo, min(n, lo + settings.chunk))
        texts = texts_of(positions)
        batches = [texts[i : i + _BATCH] for i in range(0, len(texts), _BATCH)]
        for packed in _map(pool, partial(_packed_regions, settings), batches):
            for size, mined_regions in _unpacked(packed):
                sizes[len(regions)] = size
                regions.append(mined_regions)
    vocabulary, habit = count_support(regions, accounts, groups, settings)
    text, found, coverage = [""] * n, [np.zeros(0, np.uint64)] * n, np.zeros(n)
    support, anchored = np.zeros(n), np.zeros(n, bool)
    chosen = {}
    candidates = np.flatnonzero(_holds_vocabulary(regions, vocabulary))
    for lo in range(0, len(candidates), settings.chunk):
        part = candidates[lo : lo + settings.chunk]
        batch = spans_of_many(
            [regions[p] for p in part.tolist()], sizes[part], vocabulary, settings, partial(_of_part, habit, part)
        )
        for pos, spans in zip(part.tolist(), batch):
            if spans is not None:
                chosen[pos] = spans
            regions[pos] = []  # done with it: free as we go
    for pos, spans in chosen.items():
        found[pos], coverage[pos], support[pos], anchored[pos] = span_facts(int(sizes[pos]), spans)
    for pos, wording in _wordings(texts_of, chosen, settings, pool):
        text[pos] = wording
    return Wrappers(text, found, coverage, support, anchored, vocabulary)


def _wordings(
    texts_of: TextsOf, chosen: dict[int, list[Span]], settings: WrapperSettings, pool: Pool | None
) -> Iterator[tuple[int, str]]:
    """(position, wrapper text) of every chosen prompt. Prompts whose spans spell the same tokens
    (wording_key) share one text, so only the first of each wording is read and tokenized again:
    at a million prompts that second tokenizing pass took as long as the first."""
    first_of: dict[bytes, int] = {}
    same_as: dict[int, int] = {}  # position -> the first position with its wording
    for pos in sorted(chosen):
        same_as[pos] = first_of.setdefault(wording_key(chosen[pos]), pos)
    del first_of
    firsts = np.asarray(sorted(set(same_as.values())), np.int64)
    wording: dict[int, str] = {}
    for lo in range(0, len(firsts), settings.chunk):
        part = firsts[lo : lo + settings.chunk].tolist()
        work = list(zip(texts_of(np.asarray(part, np.int64)), (chosen[pos] for pos in part)))
        wording.update(zip(part, _map(pool, _wording_of, work)))
    for pos, first in same_as.items():
        yield pos, wording[first]


_TOKENIZER: list[Tokenizer] = []  # one per process


def _tokens(raw: str) -> Tokens:
    if not _TOKENIZER:
        _TOKENIZER.append(Tokenizer())
    return _TOKENIZER[0](raw)


_BATCH = 500  # prompts a worker tokenizes per task


def _packed_regions(settings: WrapperSettings, texts: list[str]) -> tuple[np.ndarray, ...]:
    """Each text's token count and mined regions, packed into a few arrays: pickling one small
    array per region back from a worker cost as much as the tokenizing it saved."""
    sizes, counts, starts, lengths, hashes = [], [], [], [], []
    for raw in texts:
        ids = _tokens(raw).ids
        found = mined(ids, settings)
        sizes.append(len(ids))
        counts.append(len(found))
        for start, h in found:
            starts.append(start)
            lengths.append(len(h))
            hashes.append(h)
    flat = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    return tuple(np.asarray(x, np.int64) for x in (sizes, counts, starts, lengths)) + (flat,)


def _unpacked(packed: tuple[np.ndarray, ...]) -> Iterator[tuple[int, list[Region]]]:
    sizes, counts, starts, lengths, flat = packed
    pieces = np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []
    at = 0
    for size, count in zip(sizes.tolist(), counts.tolist()):
        yield size, [(int(starts[at + k]), pieces[at + k]) for k in range(count)]
        at += count


def _wording_of(work: tuple[str, list[Span]]) -> str:
    raw, spans = work
    return wrapper_text(_tokens(raw), spans)


def _map(pool: Pool | None, function: Callable, items: list) -> list:  # type: ignore[type-arg]
    """function over items, in order: on the pool's workers when there is one."""
    if pool is None:
        return [function(item) for item in items]
    return pool.map(function, items, chunksize=max(1, min(500, len(items) // 8)))  # ordered


def _of_part(
    habit: Callable[[np.ndarray, np.ndarray], np.ndarray], part: np.ndarray, i: np.ndarray, h: np.ndarray
) -> np.ndarray:
    return habit(part[i], h)  # positions within the part -> window positions


def count_support(
    regions: list[list[Region]], accounts: np.ndarray, groups: np.ndarray, settings: WrapperSettings
) -> tuple[Vocabulary, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """Support (near-copy groups) and accounts of every shingle that could be part of a wrapper,
    and habit(prompts, hashes): the share of each prompt's account's prompts holding the hash."""
    unique = [np.unique(np.concatenate([h for _, h in r])) if r else np.zeros(0, np.uint64) for r in regions]
    owner = np.repeat(np.arange(len(unique)), [len(u) for u in unique])
    every = np.concatenate(unique) if unique else np.zeros(0, np.uint64)
    del unique
    # Most shingles occur in one prompt: drop those held by fewer prompts than min_support before
    # the (owner, hash) sorts, which then run on a few percent of the pairs (memory at a million).
    distinct, prompts = np.unique(every, return_counts=True)
    keep = hashes_in(distinct[prompts >= settings.min_support], every)
    every, owner = every[keep], owner[keep]
    # (cae9f99 sorted (rank, owner) keys once instead: 2.3x faster here, but that 1M dedup peaked
    # 0.9 GiB higher, and this was the likeliest cause; reverted until measured alone)
    support = _distinct_per_hash(every, groups[owner].astype(np.int64))
    senders = _distinct_per_hash(every, accounts[owner].astype(np.int64))
    keep = (support[1] >= settings.min_support) & (senders[1] >= settings.min_accounts)
    vocabulary = Vocabulary(support[0][keep], support[1][keep], senders[1][keep], int(len(np.unique(groups))))
    return vocabulary, _habits(every, accounts[owner], accounts)


def _habits(
    hashes: np.ndarray, senders: np.ndarray, accounts: np.ndarray
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """habit(prompts, hashes): how many of the prompt's account's prompts hold the hash, over how
    many prompts that account sent (0 below three prompts: one prompt says nothing of habits)."""
    key = _pair_key(hashes, senders)
    keys, counts = np.unique(key, return_counts=True)
    sent = np.bincount(accounts.astype(np.int64))

    def habit(prompts: np.ndarray, shingles: np.ndarray) -> np.ndarray:
        who = accounts[prompts].astype(np.int64)
        wanted = _pair_key(shingles, who)
        at = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
        held = np.where(len(keys) and keys[at] == wanted, counts[at], 0) if len(keys) else np.zeros(len(wanted))
        return np.where(sent[who] >= 3, held / np.maximum(sent[who], 1), 0.0)

    return habit


def _pair_key(hashes: np.ndarray, accounts: np.ndarray) -> np.ndarray:
    """One 64-bit key per (shingle, account) pair (a multiply-xor mix; collisions are negligible)."""
    with np.errstate(over="ignore"):
        return hashes ^ (accounts.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019))


def _holds_vocabulary(regions: list[list[Region]], vocabulary: Vocabulary) -> np.ndarray:
    """Which prompts hold at least one wrapper-grade shingle (the others cannot have a wrapper)."""
    counts = np.asarray([sum(len(h) for _, h in r) for r in regions], np.int64)
    if not counts.sum() or not len(vocabulary.hashes):
        return np.zeros(len(regions), bool)
    every = np.concatenate([h for r in regions for _, h in r])
    hit = hashes_in(vocabulary.hashes, every)  # every vocabulary shingle has support >= min_support
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return np.logical_or.reduceat(hit, np.minimum(starts, len(hit) - 1)) & (counts > 0)


def _distinct_per_hash(hashes: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct hashes, number of distinct owners holding each)."""
    if not len(hashes):
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    order = np.lexsort((owners, hashes))
    h, o = hashes[order], owners[order]
    new_pair = np.concatenate(([True], (h[1:] != h[:-1]) | (o[1:] != o[:-1])))
    h = h[new_pair]
    starts = np.concatenate(([True], h[1:] != h[:-1]))
    distinct = h[starts]
    counts = np.diff(np.concatenate((np.flatnonzero(starts), [len(h)])))
    return distinct, counts


def mined_shingles(tokens: Tokens, settings: WrapperSettings) -> np.ndarray:
    """All the shingles of the part of a prompt that is mined, in order."""
    parts = [h for _, h in mined(tokens.ids, settings)]
    return np.concatenate(parts) if parts else np.zeros(0, np.uint64)


@contextmanager
def shingle_reader(
    texts_of: TextsOf,
    settings: WrapperSettings,
    *,
    workers: int | None = None,
    parallel_min: int = PARALLEL_BATCH_MIN,
) -> Iterator[Callable[[np.ndarray], list[np.ndarray]]]:
    """shingles_of(positions): each prompt's mined shingles (mined_shingles of its text), in order.

    Family adoption asks this of every prompt an edge ties to a family (a third of a million at
    1M prompts), and tokenizing them in the parent took as long as the rest of adoption: calls
    of at least parallel_min prompts tokenize on `workers` forked processes (default: up to
    two), forked at the first such call and kept until the block ends."""
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    with ExitStack() as stack:
        pools: list[Pool | None] = []

        def shingles_of(positions: np.ndarray) -> list[np.ndarray]:
            texts = texts_of(positions)
            if len(texts) >= parallel_min and not pools:
                pools.append(stack.enter_context(forked_pool(workers)))
            pool = pools[0] if pools and len(texts) >= parallel_min else None
            batches = [texts[i : i + _BATCH] for i in range(0, len(texts), _BATCH)]
            out = []
            for packed in _map(pool, partial(_packed_regions, settings), batches):
                for _, regions in _unpacked(packed):
                    out.append(np.concatenate([h for _, h in regions]) if regions else np.zeros(0, np.uint64))
            return out

        yield shingles_of


__all__ = ["Wrappers", "mine_wrappers", "mined_shingles", "shingle_reader"]
