"""CachedWordPiece: a BERT WordPiece tokenizer's token ids, computed word by word from a cache.

A static model's whole cost is tokenization: on one core the `tokenizers` library spent
~250 us on a 370-character prompt (78 tokens), 80% of the bulk path's embedding time.
WordPiece tokenizes each pre-tokenized word on its own, and prompt traffic reuses a small
vocabulary of words, so the ids of a word are looked up once and cached: for an ASCII
text, BERT's normalizer and pre-tokenizer reduce to lower-casing, dropping control
characters and splitting into runs of letters and digits and single punctuation marks,
which one regex does. Measured on one core, the tokenizer single-threaded as in ingest's
workers: the core corpus's ASCII prompts take ~60 us instead of ~250 us; the eval corpus
takes 180 us a prompt instead of 300 (its non-ASCII prompts, 12%, are 3x longer and still
go to the tokenizer). The ids are the tokenizer's own, so the vectors are too, bit for bit
(pinned by a test comparing every ASCII character, random strings and the demo corpus).

Anything else goes to the tokenizer itself: non-ASCII texts (accent stripping, CJK
padding), texts holding a special token's literal text ("[UNK]" is matched before
normalization), and any tokenizer that is not a lower-casing BERT WordPiece.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from itertools import chain
from typing import Any

# What BERT's clean_text removes from ASCII: control characters other than \t, \n and \r.
_ASCII_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# BertPreTokenizer on ASCII: split at whitespace, and every punctuation mark (every printable
# character that is not a letter or digit) is a word of its own.
_ASCII_WORDS = re.compile(r"[a-z0-9]+|[^a-z0-9 \t\n\r]")
# Bounds the cache's memory (~150 bytes a word); past it the cache starts over.
MAX_CACHED_WORDS = 500_000


class CachedWordPiece:
    """Token ids (no special tokens, truncated as the tokenizer truncates) of texts, in order."""

    def __init__(self, tokenizer: Any):
        self._tokenizer = tokenizer
        self._words: dict[str, tuple[int, ...]] = {}
        self._specials = [token.content for token in tokenizer.get_added_tokens_decoder().values()]
        truncation = tokenizer.truncation
        self._max_tokens = truncation["max_length"] if truncation else None
        padding = tokenizer.padding
        unpadded = padding is None or padding.get("length") == 0  # padding would add ids to a word's
        self.cached = unpadded and _is_lowercasing_bert_wordpiece(json.loads(tokenizer.to_str()))

    def __len__(self) -> int:
        """Words in the cache."""
        return len(self._words)

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        fast = [i for i, text in enumerate(texts) if self._has_fast_path(text)]
        result: list[list[int]] = [[] for _ in texts]
        for i, ids in zip(fast, self._cached_ids([texts[i] for i in fast])):
            result[i] = ids
        slow = sorted(set(range(len(texts))).difference(fast))
        if slow:
            encoded = self._tokenizer.encode_batch_fast([texts[i] for i in slow], add_special_tokens=False)
            for i, encoding in zip(slow, encoded):
                result[i] = encoding.ids
        return result

    def _has_fast_path(self, text: str) -> bool:
        return self.cached and text.isascii() and not any(special in text for special in self._specials)

    def _cached_ids(self, texts: list[str]) -> list[list[int]]:
        words = [_ASCII_WORDS.findall(_ASCII_CONTROLS.sub("", text.lower())) for text in texts]
        self._learn(set().union(*words))
        lookup = self._words.__getitem__
        ids = [list(chain.from_iterable(map(lookup, text_words))) for text_words in words]
        if self._max_tokens is not None:
            ids = [text_ids[: self._max_tokens] for text_ids in ids]
        return ids

    def _learn(self, needed: set[str]) -> None:
        """Cache the ids of every needed word not cached yet."""
        new_words = needed.difference(self._words)
        if not new_words:
            return
        if len(self._words) + len(new_words) > MAX_CACHED_WORDS:
            self._words.clear()  # start over, keeping what this batch needs
            new_words = needed
        ordered = sorted(new_words)
        # One word never splits further, so the tokenizer's pre-tokenizer leaves it whole.
        for word, encoding in zip(ordered, self._tokenizer.encode_batch_fast(ordered, add_special_tokens=False)):
            self._words[word] = tuple(encoding.ids)


def _is_lowercasing_bert_wordpiece(config: dict) -> bool:
    """True when the tokenizer is the one this cache imitates (as model2vec distills MiniLM's)."""
    normalizer = config.get("normalizer") or {}
    return (
        normalizer.get("type") == "BertNormalizer"
        and normalizer.get("clean_text") is True
        and normalizer.get("lowercase") is True
        and (config.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer"
        and (config.get("model") or {}).get("type") == "WordPiece"
    )
