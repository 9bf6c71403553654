"""Nightly dedup: cluster a window of traffic with every signal, explain clusters, score campaigns.

Edges, each verified on the stored signals:
  * near-duplicates: whole-prompt MinHash band join (the LSH's own bands) → Jaccard >= jaccard;
  * wrappers: head/tail window band joins → window Jaccard >= window_jaccard;
  * paraphrases: mutual k-nearest neighbours in embedding space with cosine >= cosine.
Before that, prompts that share a wrapper — a fixed instruction anywhere in the prompt, found by
wrapper mining (wrappers.py) — are grouped into campaign families (families.py) across rewordings
and languages. A family is one cluster; its members leave the edge graph, so a family never
chains to others through slot content. The remaining prompts are merged strongest edge first by
a union-find that refuses to join two multi-member clusters unless their representatives are
alike too (the chaining guard), then clusters sent by largely the same accounts are joined.
Every cluster is scored by spread, variety, coordination, intent, repetition and dedication
(features.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from search.embedding import IDENTITY_SCALE, CosineScale, Encoder
from search.index import PromptIndex
from search.intent import IntentScorer
from search.normalize import normalize
from search.records import to_iso
from search.signals import Signals
from search.store import PromptStore
from search.wrappers import WrapperSettings

from .coordination import Activity
from .families import Families, FamilySettings, find_families
from .features import DEFAULT_FLAG_THRESHOLD, campaign_score, cluster_features, explain, score_parts
from .graph import Edges, GuardedUnionFind, band_pairs, components
from .knn import mutual_knn_edges
from .templates import SLOT, extract_template
from .wrappers import mine_wrappers, shingle_reader

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DedupSettings:
    """Thresholds of the nightly job (all similarities in [0, 1])."""

    jaccard: float = 0.5
    window_jaccard: float = 0.6
    cosine: float = 0.9
    knn: int = 10
    guard_cosine: float = 0.75
    guard_jaccard: float = 0.3
    guard_window: float = 0.4
    account_overlap: float = 0.6
    account_lift: float = 10.0
    centroid_cosine: float = 0.5
    min_overlap_accounts: int = 3
    flag_threshold: float = DEFAULT_FLAG_THRESHOLD
    template_sample: int = 12
    examples: int = 3
    families: bool = True  # wrapper mining and campaign families (needs a family encoder)
    near_copy_jaccard: float = 0.8  # prompts this alike are one near-copy group (wrapper support, variety)
    wrapper: WrapperSettings = WrapperSettings()
    family: FamilySettings = FamilySettings()

    def in_raw_cosines(self, scale: CosineScale) -> DedupSettings:
        """These settings with every cosine threshold translated to the backend's own cosines."""
        if scale.is_identity:
            return self
        return replace(
            self,
            cosine=scale.to_raw(self.cosine),
            guard_cosine=scale.to_raw(self.guard_cosine),
            centroid_cosine=scale.to_raw(self.centroid_cosine),
        )


@dataclass(frozen=True)
class Source:
    """What dedup reads: the store and the shape of its signals (no FAISS or LSH needed)."""

    store: PromptStore
    dim: int
    num_perm: int
    bands: tuple[int, int]
    cosine_scale: CosineScale = IDENTITY_SCALE  # the embedding backend's cosines -> MiniLM's

    @classmethod
    def of(cls, index: PromptIndex) -> Source:
        manifest = index.manifest
        return cls(index.store, manifest.dim, manifest.settings.num_perm, index.lsh_bands, index.cosine_scale)


@dataclass
class Window:
    """The prompts of one time window, as arrays aligned by position.

    A subset (`Window.subset`) keeps its whole window's account names and per-account totals,
    so statistics over its clusters are the whole window's.
    """

    rows: np.ndarray
    accounts: np.ndarray  # int codes into account_names
    account_names: list[str]
    timestamps: np.ndarray
    signals: Signals | None  # None: rows, accounts and times only (the Ray driver reads signals in blocks)
    account_totals: np.ndarray | None = None  # prompts per account in the whole window

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def loaded_signals(self) -> Signals:
        """The window's signals, for the steps that need them (a window the Ray driver read has none)."""
        if self.signals is None:
            raise ValueError("this window was read without its signals")
        return self.signals

    def totals(self) -> np.ndarray:
        if self.account_totals is not None:
            return self.account_totals
        return np.bincount(self.accounts, minlength=len(self.account_names))

    def subset(self, positions: np.ndarray, signals: Signals) -> Window:
        """The prompts at positions (ascending), with their signals."""
        return Window(
            self.rows[positions],
            self.accounts[positions],
            self.account_names,
            self.timestamps[positions],
            signals,
            self.totals(),
        )


@dataclass
class DedupResult:
    clusters: list[dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)
    families: Families | None = None


def load_window(
    source: Source,
    since: float | None,
    until: float | None,
    *,
    with_signals: bool = True,
    rows: np.ndarray | None = None,
) -> Window:
    """Every stored prompt with since <= timestamp < until (or, given rows, those rows), with its
    signals unless told otherwise."""
    chosen = rows is not None
    window = source.store.window_of(rows) if rows is not None else source.store.window(since, until)
    rows, codes, names, timestamps = window
    signals = signals_of(source, rows) if with_signals else None
    totals = None
    if chosen and len(rows):
        # An account's share of traffic counts all it sent over the span, not just the rows chosen:
        # a long-lived user with one sibling in the history is not a one-prompt account.
        totals = source.store.account_counts(names, float(timestamps.min()), np.nextafter(timestamps.max(), np.inf))
    return Window(rows, codes, names, timestamps, signals, account_totals=totals)


def signals_of(source: Source, rows: np.ndarray) -> Signals:
    """The signals of rows (ascending), aligned with them."""
    found, signals = source.store.signals(rows, source.dim, source.num_perm)
    if not np.array_equal(found, rows):  # a delete or purge ran between reading the window and its signals
        raise RuntimeError("prompts were deleted while dedup read the window; run dedup again")
    return signals


def find_edges(
    window: Window, settings: DedupSettings, bands: tuple[int, int], queries: np.ndarray | None = None
) -> dict[str, Edges]:
    """Verified candidate pairs of every kind (for the queries only, when given)."""
    sig, win = window.loaded_signals.signatures, window.loaded_signals.windows
    pairs = band_pairs(sig, *bands, queries=queries)
    jac = pair_jaccard(sig, pairs)
    keep = jac >= settings.jaccard
    edges = {"jaccard": Edges(pairs[keep, 0], pairs[keep, 1], jac[keep].astype(np.float32))}
    has = np.flatnonzero(window.loaded_signals.has_windows)
    window_parts = []
    for side in (0, 1):
        local_queries = None if queries is None else np.flatnonzero(np.isin(has, queries))
        p = band_pairs(win[has, side], *bands, queries=local_queries)
        if not len(p):
            continue
        p = has[p]
        wj = pair_jaccard(win[:, side], p)
        ok = wj >= settings.window_jaccard
        window_parts.append(Edges(p[ok, 0], p[ok, 1], wj[ok].astype(np.float32)))
    edges["window"] = Edges.concat(window_parts)
    edges["cosine"] = mutual_knn_edges(window.loaded_signals.vectors, settings.knn, settings.cosine, queries)
    return edges


def pair_jaccard(signatures: np.ndarray, pairs: np.ndarray, chunk: int = 250_000) -> np.ndarray:
    """MinHash Jaccard estimate of each pair, a chunk at a time (millions of pairs would
    otherwise materialize two full signature copies at once: gigabytes at a million prompts)."""
    out = np.zeros(len(pairs), dtype=np.float64)
    for lo in range(0, len(pairs), chunk):
        part = pairs[lo : lo + chunk]
        out[lo : lo + len(part)] = (signatures[part[:, 0]] == signatures[part[:, 1]]).mean(axis=1)
    return out


def near_copy_groups(n: int, jaccard: Edges, threshold: float) -> np.ndarray:
    """The near-copy group of each window position (a group's label is its smallest position)."""
    keep = jaccard.weight >= threshold
    return components(n, np.stack([jaccard.left[keep], jaccard.right[keep]], axis=1))


def build_clusters(
    window: Window,
    edges: dict[str, Edges],
    settings: DedupSettings,
    seeds: list[np.ndarray] | None = None,
    families: Families | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Cluster labels of every window position, after and before the account-overlap merge.

    A singleton's label is its own position. Family members are clustered by their family
    (each form a part) and take no part in the edge graph: slots never chain families.
    """
    v, sig, win, has = (
        window.loaded_signals.vectors,
        window.loaded_signals.signatures,
        window.loaded_signals.windows,
        window.loaded_signals.has_windows,
    )

    def alike(a: int, b: int) -> bool:
        if float(v[a] @ v[b]) >= settings.guard_cosine or (sig[a] == sig[b]).mean() >= settings.guard_jaccard:
            return True
        return bool(has[a] and has[b] and max((win[a, s] == win[b, s]).mean() for s in (0, 1)) >= settings.guard_window)

    in_family = np.zeros(len(window), bool) if families is None else families.labels >= 0
    uf = GuardedUnionFind(len(window), alike)
    for seed in seeds or []:  # earlier clusters (incremental runs) are trusted as they are
        seed = seed[~in_family[seed]]
        for other in seed[1:]:
            uf.union(int(seed[0]), int(other), trusted=True)
    every = Edges.concat(list(edges.values()))
    outside = ~(in_family[every.left] | in_family[every.right])
    for i in np.flatnonzero(outside)[np.argsort(-every.weight[outside], kind="stable")]:
        uf.union(int(every.left[i]), int(every.right[i]))
    for label, members in families.member_groups() if families is not None else []:
        for other in members:
            if other != label:
                uf.union(label, int(other), trusted=True)
    labels = uf.labels()
    # families already joined their forms by accounts and meaning; the rest may still merge
    outside_labels = np.where(in_family, -1, labels)
    merged = _merge_by_accounts(outside_labels, window.accounts, len(window.account_names), v, settings, uf)
    parts = labels.copy()
    if families is not None:
        for label, members in families.form_groups():
            parts[members] = label
    counts = {kind: len(e.left) for kind, e in edges.items()}
    counts.update(
        refused_merges=uf.refused,
        account_merges=merged,
        families=0 if families is None else families.count(),
        family_members=int(in_family.sum()),
    )
    return uf.labels(), parts, counts


def _merge_by_accounts(
    labels: np.ndarray,
    accounts: np.ndarray,
    total_accounts: int,
    vectors: np.ndarray,
    settings: DedupSettings,
    uf: GuardedUnionFind,
) -> int:
    """Join clusters sent by the same accounts about the same thing (one campaign's paraphrased wrappers).

    Two clusters merge when they share at least min_overlap_accounts accounts and either most
    of the smaller one's accounts (overlap coefficient >= account_overlap) or far more than
    chance would give (>= account_lift times |A|·|B|/accounts: a campaign whose accounts
    spread a couple of prompts over several paraphrases). Shared accounts alone are not
    enough — one community copies unrelated popular prompts — so the clusters' mean
    embeddings must also agree (cosine >= centroid_cosine).
    """
    groups: dict[int, set[int]] = {}
    for pos, label in enumerate(labels.tolist()):
        groups.setdefault(label, set()).add(int(accounts[pos]))
    big = [(label, accs) for label, accs in groups.items() if label >= 0 and len(accs) >= settings.min_overlap_accounts]
    if len(big) < 2:
        return 0
    index_of = {label: n for n, (label, _) in enumerate(big)}
    member = np.asarray([index_of.get(int(lab), -1) for lab in labels.tolist()])
    sums = np.zeros((len(big), vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, member[member >= 0], vectors[member >= 0])
    centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)
    by_account: dict[int, list[int]] = {}
    for n, (_, accs) in enumerate(big):
        for a in accs:
            by_account.setdefault(a, []).append(n)
    merged = 0
    for n, (label, accs) in enumerate(big):
        shared: dict[int, int] = {}
        for a in accs:
            for m in by_account[a]:
                if m > n:
                    shared[m] = shared.get(m, 0) + 1
        for m, common in shared.items():
            other_label, other = big[m]
            if common < settings.min_overlap_accounts:
                continue
            overlap = common / min(len(accs), len(other))
            lift = common * total_accounts / (len(accs) * len(other))
            together = overlap >= settings.account_overlap or lift >= settings.account_lift
            if together and float(centroids[n] @ centroids[m]) >= settings.centroid_cosine:
                merged += uf.union(label, other_label, trusted=True)
    return merged


@dataclass
class Context:
    """What scoring needs beyond the clusters: near-copy groups, window activity, families, intent."""

    copies: np.ndarray  # near-copy group per window position
    activity: Activity
    family_of: np.ndarray  # family index per window position (-1: none)
    family_text: dict[int, str] = field(default_factory=dict)  # family index -> its main wrapper
    intent: IntentScorer | None = None

    @classmethod
    def minimal(cls, window: Window) -> Context:
        """No near-copy groups, families or intent known (every prompt its own group).

        Built from the whole window, it also describes a subset of it (the Ray driver's
        clustered prompts): the activity every cluster is compared with is the window's."""
        n = len(window)
        activity = Activity.of(window.accounts, window.timestamps, len(window.account_names))
        return cls(np.arange(n), activity, np.full(n, -1, np.int64))


def describe_clusters(
    source: Source,
    window: Window,
    labels: np.ndarray,
    parts: np.ndarray,
    settings: DedupSettings,
    context: Context | None = None,
) -> list[dict[str, Any]]:
    """Template, examples, statistics and campaign score of every cluster of two or more prompts.

    parts are the labels before the account-overlap merge (a family's parts are its forms): a
    merged cluster's template is its largest part's (the others are listed as variants), and
    its diversity is measured within parts, since varied slots are a property of one wrapper.
    """
    context = context or Context.minimal(window)
    rng = np.random.default_rng(0)
    order = np.argsort(labels, kind="stable")
    starts = np.flatnonzero(np.concatenate(([True], labels[order][1:] != labels[order][:-1])))
    groups = [m for m in np.split(order, starts[1:]) if len(m) >= 2]
    drafts = [_draft(source, window, members, parts, settings, rng) for members in groups]
    instructions = [_instruction(members, draft[0], context) for members, draft in zip(groups, drafts)]
    intents = _intents(instructions, context)
    totals = window.totals()
    clusters = []
    for members, (template, fixed, texts, variants), intent in zip(groups, drafts, intents):
        features = cluster_features(
            members,
            window.accounts,
            window.account_names,
            totals,
            window.timestamps,
            window.loaded_signals.vectors,
            window.loaded_signals.signatures,
            fixed,
            rng,
            parts=parts[members],
            cosine_scale=source.cosine_scale,
            activity=context.activity,
            copies=context.copies,
            intent=intent,
        )
        features["family"] = bool((context.family_of[members] >= 0).mean() > 0.5)
        score = campaign_score(features)
        features["score_parts"] = score_parts(features)
        features["why"] = explain(features, score, settings.flag_threshold)
        ts = window.timestamps[members]
        clusters.append(
            {
                "rows": window.rows[members],
                "size": int(len(members)),
                "accounts": features["accounts"],
                "template": template,
                "first_seen": to_iso(float(ts.min())),
                "last_seen": to_iso(float(ts.max())),
                "campaign_score": score,
                "flagged": score >= settings.flag_threshold,
                "features": features,
                "examples": [t[:300] for t in texts[: settings.examples]],
                "variants": variants,
            }
        )
    return clusters


def _draft(
    source: Source,
    window: Window,
    members: np.ndarray,
    parts: np.ndarray,
    settings: DedupSettings,
    rng: np.random.Generator,
) -> tuple[str, float, list[str], list[str]]:
    """(template, fixed share, sample texts, variant templates) of one cluster, from its parts."""
    part_ids, part_sizes = np.unique(parts[members], return_counts=True)
    by_size = [int(p) for p in part_ids[np.argsort(-part_sizes, kind="stable")]]
    variants = [_template(source, window, members[parts[members] == p], p, settings, rng) for p in by_size[:5]]
    template, fixed, texts = variants[0]
    return template, fixed, texts, [v[0] for v in variants] if len(by_size) > 1 else []


def _instruction(members: np.ndarray, template: str, context: Context) -> str:
    """The text whose intent a cluster carries: its family's wrapper, else its template's fixed words."""
    family = context.family_of[members]
    if (family >= 0).mean() > 0.5:
        values, counts = np.unique(family[family >= 0], return_counts=True)
        return context.family_text.get(int(values[np.argmax(counts)]), "")
    return " ".join(w for w in template.split() if w != SLOT)


def _intents(texts: list[str], context: Context) -> list[tuple[float, str, float]]:
    """(calibrated intent, closest intent's name, raw cosine) of each cluster's instruction."""
    if context.intent is None or not texts:
        return [(0.0, "", 0.0)] * len(texts)
    raw, kinds = context.intent.raw([t or " " for t in texts])
    scores = context.intent.calibrate(raw)
    return [(float(s), k if s > 0 else "", float(r)) for s, k, r in zip(scores, kinds, raw)]


def _template(
    source: Source,
    window: Window,
    members: np.ndarray,
    root: int,
    settings: DedupSettings,
    rng: np.random.Generator,
) -> tuple[str, float, list[str]]:
    """(template, fixed share, raw texts of the sample) of one group, led by its founder."""
    sample = [root] + [int(m) for m in rng.permutation(members) if m != root][: settings.template_sample - 1]
    stored = source.store.fetch(window.rows[sample].tolist())
    raw = [stored[int(window.rows[i])].text for i in sample]
    template, fixed = extract_template(normalize(raw[0]), [normalize(t) for t in raw[1:]])
    return template, fixed, raw


def run_dedup(
    source: Source,
    *,
    since: float | None = None,
    until: float | None = None,
    settings: DedupSettings = DedupSettings(),
    previous: list[np.ndarray] | None = None,
    new_rows: np.ndarray | None = None,
    encoder: Encoder | None = None,
    rows: np.ndarray | None = None,
) -> DedupResult:
    """Cluster the window [since, until). With previous clusters (rows) and new_rows, only new edges are sought.

    encoder: the family encoder (wrapper meaning and intent); families and intent are off without one.
    rows: cluster these rows instead of the time range (a day with its history: indexer/history.py).
    """
    start = time.perf_counter()
    window = load_window(source, since, until, rows=rows)
    loaded = time.perf_counter()
    position = {int(r): i for i, r in enumerate(window.rows.tolist())}
    queries = None if new_rows is None else np.asarray([position[r] for r in new_rows.tolist() if r in position])
    seeds = None
    if previous is not None:
        seeds = [np.asarray([position[r] for r in rows.tolist() if r in position], np.int64) for rows in previous]
        seeds = [s for s in seeds if len(s) > 1]
    bands = source.bands
    raw = settings.in_raw_cosines(source.cosine_scale)  # thresholds are MiniLM cosines
    edges = find_edges(window, raw, bands, queries) if len(window) else {}
    found = time.perf_counter()
    spill = queries is None and settings.families and encoder is not None and len(window) >= SPILL_MIN_PROMPTS
    with _signals_on_disk(window, source.store.path.parent, enabled=spill):
        context, families = _families(source, window, edges, settings, encoder, full=queries is None)
    mined = time.perf_counter()
    empty = np.zeros(0, np.int64)
    labels, parts, counts = build_clusters(window, edges, raw, seeds, families) if len(window) else (empty, empty, {})
    clustered = time.perf_counter()
    clusters = describe_clusters(source, window, labels, parts, settings, context)
    stats = {
        "prompts": len(window),
        "clusters": len(clusters),
        "flagged": sum(c["flagged"] for c in clusters),
        "edges": counts,
        "incremental": new_rows is not None,
        "seconds": {
            "load": round(loaded - start, 2),
            "edges": round(found - loaded, 2),
            "families": round(mined - found, 2),
            "cluster": round(clustered - mined, 2),
            "describe": round(time.perf_counter() - clustered, 2),
        },
    }
    logger.info(
        "dedup: %d prompts, %d clusters, %d flagged, %.1f s (%s)",
        len(window),
        len(clusters),
        stats["flagged"],
        time.perf_counter() - start,
        ", ".join(f"{stage} {s} s" for stage, s in stats["seconds"].items()),
    )
    return DedupResult(clusters, stats, families)


SPILL_MIN_PROMPTS = 200_000  # ~0.8 GB of signals: below that, memory is not what limits a run
SPILL_PREFIX = ".dedup-signals-"


@contextmanager
def _signals_on_disk(window: Window, directory: Path, *, enabled: bool) -> Iterator[None]:
    """The window's signals (~4 KB a prompt: vectors, signatures, windows) written to a private
    directory beside the store and dropped while families are mined, then read back: nothing in
    wrapper and family mining reads them, and at a million prompts they were 4 of the run's
    13.6 GiB peak. A directory a killed run left behind is removed by the next one."""
    if not enabled or window.signals is None:
        yield
        return
    for stale in directory.glob(f"{SPILL_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    spill = Path(tempfile.mkdtemp(prefix=SPILL_PREFIX, dir=directory))  # mode 0700
    try:
        names = ("vectors", "signatures", "windows")
        for name in names:
            with open(os.open(spill / f"{name}.npy", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                np.save(handle, getattr(window.signals, name), allow_pickle=False)
        window.signals = None
        yield
        window.signals = Signals(*(np.load(spill / f"{name}.npy", allow_pickle=False) for name in names))
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _families(
    source: Source,
    window: Window,
    edges: dict[str, Edges],
    settings: DedupSettings,
    encoder: Encoder | None,
    *,
    full: bool = True,
) -> tuple[Context, Families | None]:
    """Near-copy groups, wrappers and families of the window, and the scoring context they give.

    full: the edges cover the whole window (not only an incremental run's new prompts), so the
    near-copy groups come from its Jaccard edges instead of a second band join."""
    n = len(window)
    activity = Activity.of(window.accounts, window.timestamps, len(window.account_names))
    if not n:
        return Context(np.zeros(0, np.int64), activity, np.zeros(0, np.int64)), None
    jaccard = edges["jaccard"] if full and "jaccard" in edges else full_jaccard_edges(window, settings, source.bands)
    copies = near_copy_groups(n, jaccard, settings.near_copy_jaccard)
    if encoder is None or not settings.families:
        return Context(copies, activity, np.full(n, -1, np.int64)), None
    start = time.perf_counter()
    wrappers = mine_wrappers(lambda pos: _texts(source, window, pos), n, window.accounts, copies, settings.wrapper)
    logger.info("wrappers: %d prompts mined in %.1f s", n, time.perf_counter() - start)
    with shingle_reader(lambda pos: _texts(source, window, pos), settings.wrapper) as shingles_of:
        families = find_families(
            wrappers,
            window.accounts,
            window.timestamps,
            encoder,
            settings.family,
            Edges.concat(list(edges.values())),
            shingles_of,
        )
    context = Context(copies, activity, families.labels, families.main_wrappers(), IntentScorer(encoder))
    families.wrappers, families.rows, families.encoder_name = wrappers, window.rows, encoder.name
    return context, families


def full_jaccard_edges(window: Window, settings: DedupSettings, bands: tuple[int, int]) -> Edges:
    """Whole-prompt near-duplicate pairs of the whole window (the incremental path's edges cover new rows only)."""
    sig = window.loaded_signals.signatures
    pairs = band_pairs(sig, *bands)
    jac = pair_jaccard(sig, pairs)
    keep = jac >= settings.near_copy_jaccard
    return Edges(pairs[keep, 0], pairs[keep, 1], jac[keep].astype(np.float32))


def _texts(source: Source, window: Window, positions: np.ndarray) -> list[str]:
    rows = window.rows[positions].tolist()
    stored = source.store.fetch(rows)
    return [stored[r].text if r in stored else "" for r in rows]
