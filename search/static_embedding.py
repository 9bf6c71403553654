"""StaticEmbedding: a model2vec static model in numpy, giving sentence-transformers' vectors bit for bit.

A static model (the bulk path's static-minilm) is a tokenizer and a matrix of token vectors; a
text's vector is the mean of its tokens' rows. sentence-transformers' `StaticEmbedding` computes
that with torch's EmbeddingBag, and loading it means importing torch, transformers and
sentence-transformers: 6.7-12 s of a `promptsim serve` restart on this machine, for a model
that needs none of them. Here the weights load with safetensors' numpy API, the tokenizer with
`tokenizers`, and the mean is numpy's.

Identical to `StaticEmbedding.from_model2vec(folder)` (sentence-transformers 6.2, model2vec
0.10, torch 2.13 on x86), which the tests compare against:
- the weights: model2vec's "embeddings", with its optional token "mapping" and per-token
  "weights" folded in as StaticEmbedding folds them (`_fold_model2vec_weights`);
- the tokenizer: tokenizer.json as saved, padding off, truncated to the config's max_length
  (512 where it names none; null: no truncation), as model2vec's StaticModel sets it; ids
  without special tokens, unknown tokens kept (StaticEmbedding keeps them; model2vec drops them);
- the mean, as EmbeddingBag(mode="mean") computes it on the CPU: float32 sums in token order
  (fbgemm), rounded to the weights' dtype (the bag's output dtype), divided by the token count
  in float32 and rounded to that dtype again, then `.float()`. On float16 weights both
  roundings show: with one, 96% of the demo corpus's vectors differed (by up to 4e-4 once
  normalized). A text with no tokens gives zeros (torch's empty bag). numpy sums a C-contiguous
  matrix's axis 0 row after row, the fbgemm order; a test pins every bag length 0-600 against
  EmbeddingBag;
- the checksum: sha256 over the name sentence-transformers gives the weights
  (SentenceTransformer(modules=[StaticEmbedding]).state_dict() holds that one tensor) and their
  bytes, as search/embedding.py computed it from the state dict: every index stores it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cached_property
from itertools import chain
from pathlib import Path

import numpy as np
from safetensors import safe_open
from tokenizers import Tokenizer

from .wordpiece_cache import CachedWordPiece

# The weights' name in SentenceTransformer(modules=[StaticEmbedding(...)]).state_dict(): module "0".
STATE_DICT_NAME = "0.embedding.weight"
# model2vec's DEFAULT_MAX_LENGTH: the truncation where a model's config names none.
DEFAULT_MAX_LENGTH = 512
# Weight dtypes whose EmbeddingBag arithmetic is reproduced here (what model2vec saves but int8).
SUPPORTED_DTYPES = (np.dtype(np.float16), np.dtype(np.float32))


class StaticEmbedding:
    """A model2vec folder (config.json, model.safetensors, tokenizer.json): token ids -> mean vectors."""

    def __init__(self, weights: np.ndarray, tokenizer: Tokenizer):
        if weights.ndim != 2 or weights.dtype not in SUPPORTED_DTYPES:
            raise ValueError(
                f"static model weights must be a float16 or float32 matrix, not {weights.dtype} {weights.shape}"
            )
        self.weights = np.ascontiguousarray(weights)
        self.weights.flags.writeable = False
        # fbgemm accumulates float16 rows in float32; converted once here (exact), since numpy
        # converts float16 at ~2 ns a value: per batch, that was 10x the rest of the mean
        self._rows32 = self.weights.astype(np.float32)
        self.tokenizer = tokenizer
        self._wordpieces = CachedWordPiece(tokenizer)

    @classmethod
    def load(cls, folder: Path) -> StaticEmbedding:
        """Load what model2vec saved in folder, configured as StaticEmbedding.from_model2vec configures it."""
        config = json.loads((folder / "config.json").read_text())
        with safe_open(str(folder / "model.safetensors"), framework="numpy") as tensors:
            names = set(tensors.keys())
            if "embeddings" not in names:
                raise ValueError(f"{folder / 'model.safetensors'} holds no 'embeddings' (a model2vec model has them)")
            weights = fold_model2vec_weights(
                tensors.get_tensor("embeddings"),
                tensors.get_tensor("mapping") if "mapping" in names else None,
                tensors.get_tensor("weights") if "weights" in names else None,
            )
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.no_padding()
        max_length = config.get("max_length", DEFAULT_MAX_LENGTH)
        if max_length is None:
            tokenizer.no_truncation()
        else:
            tokenizer.enable_truncation(max_length)
        return cls(weights, tokenizer)

    @property
    def dim(self) -> int:
        return int(self.weights.shape[1])

    @cached_property
    def checksum(self) -> str:
        """sha256 over the state dict's one name and the weights' bytes (first 16 hex digits)."""
        digest = hashlib.sha256()
        digest.update(STATE_DICT_NAME.encode())
        digest.update(self.weights.tobytes())
        return digest.hexdigest()[:16]

    @property
    def words_cached(self) -> int:
        """Words in the tokenizer's word cache (see wordpiece_cache.py)."""
        return len(self._wordpieces)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's token ids: the tokenizer's, without special tokens, truncated (through the word cache)."""
        return self._wordpieces.ids(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32: each text's mean token vector (not normalized; zeros for no tokens)."""
        return self.mean_of(self.token_ids(texts))

    def mean_of(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """EmbeddingBag(mode="mean")(ids).float(), bit for bit (see the module note)."""
        lengths = [len(bag) for bag in ids]
        flat = np.fromiter(chain.from_iterable(ids), np.intp, sum(lengths))
        sums = np.zeros((len(lengths), self.dim), np.float32)
        take, reduce = self._rows32.take, np.add.reduce
        start = 0
        for i, length in enumerate(lengths):  # one bag's rows at a time: a batch's would be 1 KB a token
            if length:
                reduce(take(flat[start : start + length], axis=0), axis=0, out=sums[i])  # row after row
            start += length
        sums += 0.0  # fbgemm starts from +0.0, so -0.0s sum to +0.0 (numpy 2.4's reduce does too; older copy)
        counts = np.maximum(np.array(lengths, np.float32), 1.0)[:, None]  # an empty bag: 0 / 1
        dtype = self.weights.dtype
        return (sums.astype(dtype).astype(np.float32) / counts).astype(dtype).astype(np.float32)


def fold_model2vec_weights(
    embeddings: np.ndarray, mapping: np.ndarray | None = None, token_weights: np.ndarray | None = None
) -> np.ndarray:
    """One row per token id, as sentence-transformers' StaticEmbedding._fold_model2vec_weights makes it.

    `row[token] = embeddings[mapping[token]] * token_weights[token]` (vocabulary-quantized
    models), computed in the promoted dtype (at least float32) and kept there, as torch does.
    """
    if mapping is not None:
        embeddings = embeddings[mapping.astype(np.int64)]
    if token_weights is not None:
        embeddings = embeddings.astype(np.promote_types(embeddings.dtype, np.float32))
        embeddings = (embeddings * token_weights[:, None]).astype(embeddings.dtype)
    return np.ascontiguousarray(embeddings)
