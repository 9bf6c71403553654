"""Encoders: text -> L2-normalized float32 vectors, so cosine equals inner product."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
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
from .static_embedding import StaticEmbedding

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
    """An embedding model by name or path, loaded lazily on first use (the defaults run offline).

    Two backends: a transformer (MiniLM, the quality path) through sentence-transformers (torch;
    onnxruntime for single queries), and a static model2vec model (token-vector averages, the
    bulk path) through search/static_embedding.py: numpy, tokenizers and safetensors, no torch,
    the vectors and checksum sentence-transformers' StaticEmbedding gives, bit for bit. `device`
    is the transformer's; a static model embeds on the CPU.
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str = "cpu"):
        self.name = DEFAULT_MODEL if model in DEFAULT_ALIASES else model
        self._source = resolve_model(model)
        self._device = device
        self.backend = "static" if is_static_model(Path(self._source)) else "transformer"

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the recipe, not the loaded model: a worker process loads its own copy."""
        loaded = ("_model", "_static", "checksum", "_small_batch_runner")
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
        """What embeds a single query: "numpy" (a static model), "onnxruntime" or "torch"."""
        if self.backend == "static":
            return "numpy"
        return "onnxruntime" if self._small_batch_runner is not None else "torch"

    @cached_property
    def _model(self):  # type: ignore[no-untyped-def]
        """The transformer, through sentence-transformers (a static model is `_static`)."""
        if self.backend == "static":
            raise TypeError(f"{self._source} is a static model: it loads through search/static_embedding.py")
        if Path(self._source).exists():
            # A local folder needs no network; stop the hub client from trying.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        logger.info("loading embedding model %s", self._source)
        model = SentenceTransformer(self._source, device=self._device)
        freeze_survivors()  # the model lives as long as the process: keep it out of every GC pass
        return model

    @cached_property
    def _static(self) -> StaticEmbedding:
        """The static model: weights, tokenizer and word cache, no torch."""
        logger.info("loading static embedding model %s", self._source)
        model = StaticEmbedding.load(Path(self._source))
        freeze_survivors()
        return model

    @property
    def dim(self) -> int:
        if self.backend == "static":
            return self._static.dim
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
        if self.backend == "static":
            return self._static.checksum  # the same names and bytes as the state dict below
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
            # the whole batch at once: its cost is tokenization (wordpiece_cache.py), not the mean
            vectors = self._static.embed(list(texts))
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
