"""Encoders: text -> L2-normalized float32 vectors, so cosine equals inner product."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .heap import freeze_survivors
from .models import (
    DEFAULT_ALIASES,
    DEFAULT_MODEL,
    cache_dir,
    is_current_static_build,
    is_static_model,
    onnx_wanted,
    resolve_model,
)
from .wordpiece_cache import CachedWordPiece

logger = logging.getLogger(__name__)

# Batches up to this size run on onnxruntime (a query: 2x faster); larger ones on torch (faster there).
ONNX_MAX_BATCH = 8


@dataclass(frozen=True)
class CosineScale:
    """A monotone, piecewise-linear map from one backend's cosines onto MiniLM's scale.

    promptsim's thresholds are MiniLM cosines; on our corpus the static model's random pairs
    average 0.40 where MiniLM's average 0.05, so its raw cosines are mapped (quantile-matched
    on the same pairs, bench/calibrate_static.py) before any threshold or score sees them.
    Monotone, so rankings and nearest neighbours are unchanged.
    """

    raw: tuple[float, ...] = (-1.0, 1.0)
    common: tuple[float, ...] = (-1.0, 1.0)

    @property
    def is_identity(self) -> bool:
        return self.raw == self.common

    def to_common(self, cosine: np.ndarray) -> np.ndarray:
        """Raw cosines -> MiniLM-scale cosines."""
        if self.is_identity:
            return np.asarray(cosine)
        return np.interp(cosine, self.raw, self.common).astype(np.float32)

    def to_raw(self, threshold: float) -> float:
        """A MiniLM-scale threshold -> the raw cosine that means the same."""
        return threshold if self.is_identity else float(np.interp(threshold, self.common, self.raw))

    def to_json(self) -> dict[str, list[float]]:
        return {"raw": list(self.raw), "common": list(self.common)}

    @classmethod
    def from_json(cls, body: dict[str, list[float]] | None) -> CosineScale:
        return cls() if not body else cls(tuple(body["raw"]), tuple(body["common"]))


IDENTITY_SCALE = CosineScale()
# Fitted by `python bench/calibrate_static.py` (seed 1) for static models built by this recipe
# (STATIC_BUILD, from the bundled MiniLM). The build's weights differ in their last bits from
# one CPU to another (so do their checksums: a85769180b887a3e on the machine that fitted these,
# a406d6d9084315a0 on another), but a refit on the other machine's build gave the same knots
# within 6e-4: the scale belongs to the recipe, not to one build's bytes.
STATIC_COSINE_KNOTS: tuple[tuple[float, ...], tuple[float, ...]] = (
    (-1.0, -0.3129, 0.29931, 0.40264, 0.4774, 0.53886, 0.59172, 0.63863, 0.67838, 0.71459, 0.74463, 0.77213,
     0.79529, 0.81578, 0.83303, 0.84936, 0.86474, 0.88075, 0.89711, 0.9133, 0.93718, 0.9569, 0.97002, 0.98859,
     0.9983, 0.99949, 0.99989, 0.99999, 1.0),
    (-1.0, -0.26381, -0.00344, 0.04141, 0.08088, 0.12325, 0.17392, 0.2402, 0.31324, 0.36903, 0.41277, 0.45161,
     0.48785, 0.52429, 0.56098, 0.59446, 0.62861, 0.66239, 0.69979, 0.75008, 0.8192, 0.88621, 0.95867, 0.98624,
     0.99374, 0.99652, 0.99794, 0.9992, 1.0),
)  # fmt: skip


def static_cosine_scale() -> CosineScale:
    return CosineScale(*STATIC_COSINE_KNOTS)


class Encoder(Protocol):
    """What the index needs from an embedding model."""

    name: str

    @property
    def dim(self) -> int: ...

    @property
    def checksum(self) -> str: ...

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray: ...


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded lazily on first use (the defaults run offline).

    Two backends: a transformer (MiniLM, the quality path) and a static model2vec model loaded
    through sentence-transformers' StaticEmbedding (token-vector averages, the bulk path).
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str = "cpu"):
        self.name = DEFAULT_MODEL if model in DEFAULT_ALIASES else model
        self._source = resolve_model(model)
        self._device = device
        self.backend = "static" if is_static_model(Path(self._source)) else "transformer"

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the recipe, not the loaded model: a worker process loads its own copy."""
        loaded = ("_model", "checksum", "_small_batch_runner", "_wordpieces")
        return {k: v for k, v in self.__dict__.items() if k not in loaded}

    @cached_property
    def _small_batch_runner(self):  # type: ignore[no-untyped-def]
        """The transformer on onnxruntime for up to ONNX_MAX_BATCH texts, or None (see onnx_runtime.py)."""
        if self.backend != "transformer" or self._device != "cpu" or not onnx_wanted():
            return None
        import torch

        from .onnx_runtime import load_runner

        runner = load_runner(self._model, cache_dir(), self.checksum, threads=torch.get_num_threads())
        freeze_survivors()
        return runner

    def disable_small_batch_runtime(self) -> None:
        """Embed everything with torch (worker processes: see indexer/ingest.py)."""
        self.__dict__["_small_batch_runner"] = None

    @property
    def runtime(self) -> str:
        """What embeds a single query: "onnxruntime" or "torch"."""
        return "onnxruntime" if self._small_batch_runner is not None else "torch"

    @cached_property
    def _model(self):  # type: ignore[no-untyped-def]
        if Path(self._source).exists():
            # A local folder needs no network; stop the hub client from trying.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        logger.info("loading embedding model %s", self._source)
        if self.backend == "static":
            from sentence_transformers.sentence_transformer.modules import StaticEmbedding

            model = SentenceTransformer(modules=[StaticEmbedding.from_model2vec(self._source)], device=self._device)
        else:
            model = SentenceTransformer(self._source, device=self._device)
        freeze_survivors()  # the model lives as long as the process: keep it out of every GC pass
        return model

    @cached_property
    def _wordpieces(self) -> CachedWordPiece:
        """The static model's tokenizer behind a per-word cache (see wordpiece_cache.py)."""
        return CachedWordPiece(self._model[0].tokenizer)

    @property
    def dim(self) -> int:
        model = self._model
        # sentence-transformers 6 renamed the method; keep working with 5.x too.
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def cosine_scale(self) -> CosineScale:
        """How this model's cosines map onto MiniLM's (identity for MiniLM itself)."""
        if self.backend != "static":
            return IDENTITY_SCALE
        if not is_current_static_build(Path(self._source)):
            logger.warning("no cosine calibration for static model %s; thresholds assume MiniLM", self._source)
            return IDENTITY_SCALE
        return static_cosine_scale()

    @cached_property
    def checksum(self) -> str:
        """sha256 over the model's weights, so an index can tell a retrained model apart."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self._model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed texts in batches; rows are unit length (cosine = inner product)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.backend == "static":
            vectors = self._encode_static(list(texts))
        elif len(texts) <= ONNX_MAX_BATCH and self._small_batch_runner is not None:
            vectors = self._small_batch_runner.encode(list(texts))
        else:
            vectors = self._model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        # normalize (again) in float32: the static model's float16 weights leave norms off by ~3e-4
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def _encode_static(self, texts: list[str]) -> np.ndarray:
        """StaticEmbedding's own tokenizer (behind a word cache) and EmbeddingBag, called directly.

        A static model's whole cost is tokenization. `encode_batch_fast` (no character
        offsets) and skipping encode()'s per-text modality checks and float16 normalization
        made this 20% faster (4,000 -> 4,900 prompts/s on one core, measured); the word
        cache makes tokenization 1.6x faster again on the eval corpus (4x on ASCII prompts).
        The vectors equal encode()'s within 2e-4, and are slightly more exact (normalized in
        float32).
        """
        import torch

        module = self._model[0]  # the model is exactly one StaticEmbedding module
        ids = self._wordpieces.ids(texts)
        lengths = np.fromiter(map(len, ids), np.int64, len(ids))
        flat = np.fromiter(chain.from_iterable(ids), np.int64, int(lengths.sum()))
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        with torch.inference_mode():  # an empty bag (no tokens) embeds as zeros (encode() gives NaNs)
            return module.embedding(torch.from_numpy(flat), torch.from_numpy(offsets)).float().numpy()
