"""CachedWordPiece: a BERT WordPiece tokenizer's token ids, computed word by word from a cache.

A static model's whole cost is tokenization: on one core the `tokenizers` library spent ~250
us on a 370-character prompt (78 tokens), 80% of the bulk path's embedding time. WordPiece
tokenizes each pre-tokenized word on its own, and prompt traffic reuses a small vocabulary
of words, so the ids of a word are looked up once and cached: for an ASCII text, BERT's
normalizer and pre-tokenizer reduce to lower-casing, dropping control characters and
splitting into runs of letters and digits and single punctuation marks, which one regex
does. Other texts go through a per-character table learned from the tokenizer itself
(`_probe`: what its normalizer and pre-tokenizer make of each character as it first appears,
checked in several contexts), then `str.split`.

Measured on one core, the tokenizer single-threaded as in ingest's workers, on the eval
corpus (12% of its prompts non-ASCII, and 3x longer), a prompt took 300 us in the tokenizer,
190 warm / 257 cold with an ASCII-only cache, and 140 warm / 188 cold with this one (cold:
every prompt new, as in ingest); non-ASCII prompts 940 -> ~320 us. The ids are the
tokenizer's own, so the vectors are too, bit for bit: tests compare every ASCII character,
every basic-plane Unicode character in five contexts, random strings, multilingual prompts
and the demo corpus.

Anything else goes to the tokenizer itself: texts holding a special token's literal text
("[UNK]" is matched before normalization), characters whose normalization depends on their
neighbours or that Python's Unicode tables call combining (70 of the basic plane's 63,488,
rare marks), and any tokenizer that is not a lower-casing BERT WordPiece.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from itertools import chain
from typing import Any

# What BERT's clean_text removes from ASCII: control characters other than \t, \n and \r.
_ASCII_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# BertPreTokenizer on ASCII: split at whitespace, and every punctuation mark (every printable
# character that is not a letter or digit) is a word of its own.
_ASCII_WORDS = re.compile(r"[a-z0-9]+|[^a-z0-9 \t\n\r]")
# Where a character is probed: its normalization must not depend on its neighbours.
_CONTEXTS = (("a", "a"), ("", "a"), ("a", ""), ("A", "A"), (" ", " "), ("\u00e9", "\u4e00"))
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
        # Non-ASCII texts: each character's normalized, pre-split form (learned as characters appear).
        self._table: dict[int, str] = {}
        self._probed: set[str] = set()
        self._inexact: set[str] = set()
        if self.cached:
            for code in range(128):  # a non-ASCII text's ASCII characters go through the table too
                self._probe(chr(code))

    def __len__(self) -> int:
        """Words in the cache."""
        return len(self._words)

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        """What `[e.ids for e in tokenizer.encode_batch_fast(texts, add_special_tokens=False)]` gives."""
        words = [self._words_of(text) for text in texts]
        lookup = self._words.__getitem__
        self._learn(set().union(*(w for w in words if w is not None)))
        result = [[] if w is None else list(chain.from_iterable(map(lookup, w))) for w in words]
        if self._max_tokens is not None:
            result = [text_ids[: self._max_tokens] for text_ids in result]
        slow = [i for i, w in enumerate(words) if w is None]
        if slow:
            encoded = self._tokenizer.encode_batch_fast([texts[i] for i in slow], add_special_tokens=False)
            for i, encoding in zip(slow, encoded):
                result[i] = encoding.ids
        return result

    def _words_of(self, text: str) -> list[str] | None:
        """text's words as the tokenizer's normalizer and pre-tokenizer make them; None: ask the tokenizer."""
        if not self.cached or any(special in text for special in self._specials):
            return None
        if text.isascii():
            return _ASCII_WORDS.findall(_ASCII_CONTROLS.sub("", text.lower()))
        chars = set(text)
        for char in chars.difference(self._probed):
            self._probe(char)
        if not self._inexact.isdisjoint(chars):
            return None
        return text.translate(self._table).split()

    def _probe(self, char: str) -> None:
        """Learn what the normalizer and pre-tokenizer make of char, as text for str.translate.

        Each step of BERT's normalizer (clean-up, CJK spacing, accent stripping, lower-casing)
        and pre-tokenizer (whitespace, punctuation) acts on one character at a time; a
        character for which the tokenizer shows otherwise, in any of a few contexts, is
        marked inexact and texts holding it go to the tokenizer.
        """
        self._probed.add(char)
        normalize = self._tokenizer.normalizer.normalize_str
        alone = normalize(char)
        for before, after in _CONTEXTS:
            if normalize(before + char + after) != normalize(before) + alone + normalize(after):
                self._inexact.add(char)
                return
        framed = f"a{alone}a"
        pieces = [piece for piece, _ in self._tokenizer.pre_tokenizer.pre_tokenize_str(framed)]
        if pieces == [framed]:
            mapped = alone  # part of the word around it
        elif len(pieces) >= 2 and pieces[0] == pieces[-1] == "a":
            mapped = " " + " ".join(pieces[1:-1]) + " "  # words of its own (punctuation, CJK), or a space
        else:
            mapped = None
        # str.split must see the tokenizer's word boundaries; canonical reordering must not matter.
        if mapped is None or any(c.isspace() for c in mapped if c != " ") or (unicodedata.combining(char) and alone):
            self._inexact.add(char)
        elif mapped != char:
            self._table[ord(char)] = mapped

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


def _is_lowercasing_bert_wordpiece(config: dict[str, Any]) -> bool:
    """True when the tokenizer is the one this cache imitates (as model2vec distills MiniLM's)."""
    normalizer = config.get("normalizer") or {}
    return (
        normalizer.get("type") == "BertNormalizer"
        and normalizer.get("clean_text") is True
        and normalizer.get("lowercase") is True
        and (config.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer"
        and (config.get("model") or {}).get("type") == "WordPiece"
    )
