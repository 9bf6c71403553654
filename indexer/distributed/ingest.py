"""Ingest on Ray: read, validate, normalize and MinHash files in parallel, embed on an actor pool.

The store is the truth and has one writer, the driver. So the pipeline is:
  1. Ray Data, one task per input file (any filesystem pyarrow knows): rows are validated
     exactly as `indexer.reader` does, normalized and MinHashed in bulk; blocks come back in
     file order (`preserve_order`), so the store's rows are assigned as on one node;
  2. the driver cuts that stream into the same batches `ingest_files` makes, decides which
     prompts are new or changed (the same digest check), and hands their normalized texts to
     an actor pool whose actors load the encoder once (on a GPU when the cluster has one);
  3. the driver stores each batch, in order, with `ingest_batch`.
Embeddings depend on which texts share an `encode` call (padding changes the float sums by
~1e-7), so step 2 sends exactly the texts one node would embed together: the stores match bit
for bit. Actors are restarted and their calls retried when a worker dies.
"""

from __future__ import annotations

import gzip
import logging
import pickle
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.embedding import Encoder
from search.errors import BadRecord
from search.index import PromptIndex
from search.minhash import MinHasher
from search.normalize import normalize
from search.records import Prompt
from search.signals import Signals, minhash_signals

from ..ingest import IngestReport, _timed, checkpoint_due, ingest_batch
from ..reader import FieldMap, csv_rows, detect_format, jsonl_rows, to_prompt
from .cluster import RayCluster, import_ray

logger = logging.getLogger(__name__)

EncoderFactory = Callable[[str], Encoder]  # device ("cpu" or "cuda") -> encoder


@dataclass(frozen=True)
class RayIngestOptions:
    """How the Ray ingest splits the work."""

    batch_size: int = 256  # prompts per stored batch and per encode call, as on one node
    checkpoint_every: int = 20_000
    embed_actors: int | None = None  # default: one per GPU, else one per two CPUs
    in_flight: int = 4  # batches queued per actor (bounds driver memory)
    strict: bool = False
    time_unit: str = "auto"  # epoch numbers: s, ms, us, ns, or told apart by magnitude


def list_inputs(paths: list[str], fmt: str | None = None) -> list[tuple[str, str]]:
    """(path, format) of every input file, directories expanded and sorted: local or any pyarrow filesystem."""
    from pyarrow import fs

    found: list[tuple[str, str]] = []
    for given in paths:
        filesystem, root = fs.FileSystem.from_uri(given) if "://" in given else (fs.LocalFileSystem(), given)
        info = filesystem.get_file_info(root)
        if info.type == fs.FileType.NotFound:
            raise FileNotFoundError(f"input {given} does not exist")
        if info.type == fs.FileType.Directory:
            infos = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
            names = sorted(
                i.path for i in infos if i.type == fs.FileType.File and not Path(i.path).name.startswith(".")
            )
            prefix = given[: len(given) - len(root)] if "://" in given else ""
            found += [(prefix + n, fmt or detect_format(Path(n))) for n in names if fmt or _known(n)]
        else:
            found.append((given, fmt or detect_format(Path(given))))
    if not found:
        raise FileNotFoundError(f"no .jsonl/.csv/.parquet files under {', '.join(paths)}")
    return found


def _known(name: str) -> bool:
    try:
        detect_format(Path(name))
    except ValueError:
        return False
    return True


def _open(path: str, binary_random_access: bool = False) -> Any:
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path) if "://" in path else (fs.LocalFileSystem(), path)
    if binary_random_access:
        return filesystem.open_input_file(inner)
    handle = filesystem.open_input_stream(inner, compression=None)
    return gzip.GzipFile(fileobj=handle) if path.endswith(".gz") else handle


def _rows(path: str, fmt: str) -> Iterator[tuple[int, dict[str, Any] | BadRecord]]:
    """(line, row or problem) of one file; the same rules as indexer.reader, over a pyarrow stream."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        line = 0
        for batch in pq.ParquetFile(_open(path, True)).iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                line += 1
                yield line, row
        return
    with _open(path) as handle:
        yield from csv_rows(path, handle) if fmt == "csv" else jsonl_rows(path, _lines(handle))


def _lines(handle: Any, chunk: int = 1 << 20) -> Iterator[bytes]:
    """Lines of a binary stream, each with its newline, as iterating a binary file gives them."""
    rest = b""
    while block := handle.read(chunk):
        parts = (rest + block).split(b"\n")
        rest = parts.pop()
        yield from (part + b"\n" for part in parts)
    if rest:
        yield rest


def read_and_sign(
    batch: dict[str, np.ndarray],
    *,
    fields: FieldMap,
    num_perm: int,
    seed: int,
    rows_per_block: int = 4096,
    time_unit: str = "auto",
) -> Iterator[dict[str, Any]]:
    """Ray Data stage: every row of the batch's files, validated, with normalized text and MinHashes.

    Valid rows carry a pickled Prompt; bad ones only their problem, so the driver reports
    them in file order (and stops at the first one in strict mode) as one node would.
    """
    hasher = MinHasher(num_perm, seed)
    for path, fmt in zip(batch["path"].tolist(), batch["format"].tolist()):
        out: list[tuple[Prompt | None, BadRecord | None]] = []
        for line, row in _rows(path, fmt):
            try:
                if isinstance(row, BadRecord):
                    raise row
                out.append((to_prompt(row, fields, path, line, time_unit=time_unit), None))
            except BadRecord as problem:
                out.append((None, problem))
            if len(out) >= rows_per_block:
                yield _signed_block(out, hasher, path)
                out = []
        if out:
            yield _signed_block(out, hasher, path)


def _signed_block(
    items: list[tuple[Prompt | None, BadRecord | None]], hasher: MinHasher, source: str
) -> dict[str, Any]:
    normalized = [normalize(p.text) if p is not None else "" for p, _ in items]
    signatures, windows = minhash_signals(normalized, hasher)
    return {
        "source": np.asarray([source] * len(items), dtype=object),  # per-file counts (indexer.ingest_check)
        "prompt": np.asarray([pickle.dumps(p) if p is not None else b"" for p, _ in items], dtype=object),
        "problem": np.asarray(
            [pickle.dumps((b.source, b.line, b.reason)) if b is not None else b"" for _, b in items], dtype=object
        ),
        "normalized": np.asarray(normalized, dtype=object),
        "signature": np.asarray([s.tobytes() for s in signatures], dtype=object),
        "windows": np.asarray([w.tobytes() for w in windows], dtype=object),
    }


@dataclass
class _Pending:
    """One stored batch on its way: its prompts, MinHashes and the embedding call for its new prompts."""

    prompts: list[Prompt]
    signatures: np.ndarray
    windows: np.ndarray
    fresh: list[int]
    vectors: Any  # ObjectRef of the fresh prompts' vectors


class _Embedder:
    """Actor body: loads the encoder once, then embeds batches of normalized texts."""

    def __init__(self, factory: EncoderFactory):
        import ray

        on_gpu = bool(ray.get_gpu_ids())
        self._encoder = factory("cuda" if on_gpu else "cpu")  # loads nothing yet
        if not on_gpu and getattr(self._encoder, "backend", None) != "static":  # a static model needs no torch
            import torch

            # As many torch threads as CPUs the actor holds (at least one): actors sharing a
            # node must not each start a thread per core and fight over them.
            held = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
            torch.set_num_threads(max(1, int(held)))

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._encoder.encode(texts)


def ray_ingest(
    index: PromptIndex,
    paths: list[str],
    factory: EncoderFactory,
    cluster: RayCluster,
    *,
    fmt: str | None = None,
    fields: FieldMap = FieldMap(),
    options: RayIngestOptions = RayIngestOptions(),
) -> IngestReport:
    """Upsert every valid record of paths (files, directories or URIs) into index, computing signals on Ray."""
    ray = import_ray()
    report = IngestReport(since_row=index.store.watermark().row)
    inputs = list_inputs(paths, fmt)
    settings = index.manifest.settings
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the store assigns rows in file order
    signed = ray.data.from_items([{"path": p, "format": f} for p, f in inputs], override_num_blocks=len(inputs))
    signed = signed.map_batches(
        read_and_sign,
        batch_size=1,
        batch_format="numpy",
        fn_kwargs={
            "fields": fields,
            "num_perm": settings.num_perm,
            "seed": settings.seed,
            "time_unit": options.time_unit,
        },
    )
    pool = _actor_pool(ray, factory, cluster, options)
    started = time.perf_counter()
    writer = _Writer(index, report, options, in_flight=options.in_flight * len(pool))
    group: list[tuple[Prompt, bytes, bytes, str]] = []
    calls = 0
    for block in signed.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
        for source, prompt, problem, normalized, sig, win in zip(
            block["source"],
            block["prompt"],
            block["problem"],
            block["normalized"],
            block["signature"],
            block["windows"],
        ):
            report.read.records += 1
            counts = report.read.file(source)
            counts.records += 1
            if problem:
                bad = BadRecord(*pickle.loads(problem))
                if options.strict:
                    writer.drain()
                    raise bad
                report.read.bad(bad)
                continue
            report.read.valid += 1
            counts.valid += 1
            group.append((pickle.loads(prompt), sig, win, normalized))
            if len(group) == options.batch_size:
                writer.submit(group, pool[calls % len(pool)])
                calls += 1
                group = []
    if group:
        writer.submit(group, pool[calls % len(pool)])
    writer.drain()
    _timed(report, "index", index.checkpoint)
    report.index = index.counts()
    report.seconds["pipeline"] = time.perf_counter() - started
    logger.info("ray ingest: %d records, %d added, %d unchanged", report.read.records, report.added, report.unchanged)
    return report


def _actor_pool(ray: Any, factory: EncoderFactory, cluster: RayCluster, options: RayIngestOptions) -> list[Any]:
    gpus = 1 if cluster.gpus else 0
    count = options.embed_actors or (cluster.gpus or max(1, cluster.cpus // 2))
    # An actor holds its CPU for the whole job: where that would leave none for the read tasks
    # (a 1-CPU cluster), actors reserve none and share the cores.
    cpus = 1 if cluster.cpus - count >= 1 else 0
    actor = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=-1, max_task_retries=-1)(_Embedder)
    return [actor.remote(factory) for _ in range(count)]


class _Writer:
    """Keeps up to in_flight batches per actor embedding while the driver stores earlier ones, in order."""

    def __init__(self, index: PromptIndex, report: IngestReport, options: RayIngestOptions, *, in_flight: int):
        self._index, self._report, self._options = index, report, options
        self._queue: deque[_Pending] = deque()
        self._digests: dict[str, str] = {}  # latest digest of each queued prompt: the store's once written
        self._queued: dict[str, int] = {}  # how many queued batches hold each of those
        self._limit = in_flight
        self._since_checkpoint = 0

    def submit(self, group: list[tuple[Prompt, bytes, bytes, str]], actor: Any) -> None:
        """Decide which prompts are new (as ingest_batch will) and send their texts to actor."""
        prompts = [g[0] for g in group]
        latest = {p.id: i for i, p in enumerate(prompts)}
        not_queued = [pid for pid in latest if pid not in self._digests]
        stored = {**self._index.store.digests(not_queued), **self._digests}
        fresh = [i for i in latest.values() if stored.get(prompts[i].id) != prompts[i].digest]
        for i in fresh:
            self._digests[prompts[i].id] = prompts[i].digest
            self._queued[prompts[i].id] = self._queued.get(prompts[i].id, 0) + 1
        num_perm = self._index.manifest.settings.num_perm
        signatures = np.frombuffer(b"".join(g[1] for g in group), np.uint32).reshape(len(group), num_perm)
        windows = np.frombuffer(b"".join(g[2] for g in group), np.uint32).reshape(len(group), 2, num_perm)
        vectors = actor.encode.remote([group[i][3] for i in fresh]) if fresh else None
        self._queue.append(_Pending(prompts, signatures, windows, fresh, vectors))
        while len(self._queue) > self._limit:
            self._write(self._queue.popleft())

    def drain(self) -> None:
        while self._queue:
            self._write(self._queue.popleft())

    def _write(self, pending: _Pending) -> None:
        ray = import_ray()
        dim = self._index.manifest.dim
        vectors = np.zeros((len(pending.prompts), dim), np.float32)
        if pending.fresh:
            vectors[pending.fresh] = _timed(self._report, "embed", ray.get, pending.vectors)
        signals = Signals(vectors, pending.signatures, pending.windows)
        changed = ingest_batch(self._index, pending.prompts, self._report, signals=signals)
        if changed != len(pending.fresh):
            raise RuntimeError(f"store changed under the ingest: {changed} prompts new, {len(pending.fresh)} expected")
        for i in pending.fresh:
            pid = pending.prompts[i].id
            self._queued[pid] -= 1
            if not self._queued[pid]:
                del self._queued[pid], self._digests[pid]
        self._since_checkpoint += changed
        if checkpoint_due(self._index, self._since_checkpoint, self._options.checkpoint_every):
            _timed(self._report, "index", self._index.checkpoint)
            self._since_checkpoint = 0
