"""The word cache in front of the static model's tokenizer gives the tokenizer's own ids, always."""

import json
import random
import string

import numpy as np
import pytest
from tokenizers import normalizers

from search import wordpiece_cache
from search.embedding import SentenceTransformerEncoder
from search.models import STATIC_MODEL
from search.normalize import normalize
from search.wordpiece_cache import CachedWordPiece
from tests.conftest import REPO, background_texts


@pytest.fixture(scope="module")
def static_encoder():
    return SentenceTransformerEncoder(STATIC_MODEL)


@pytest.fixture(scope="module")
def tokenizer(static_encoder):
    """The static model's tokenizer, configured as sentence-transformers configures it (test_static_embedding.py)."""
    return static_encoder._static.tokenizer


def tokenizer_ids(tokenizer, texts):
    return [encoding.ids for encoding in tokenizer.encode_batch_fast(texts, add_special_tokens=False)]


def random_texts(n: int, seed: int = 0) -> list[str]:
    """Words, digits, every ASCII character (controls included), long words, special tokens' text."""
    rng = random.Random(seed)
    ascii_chars = [chr(c) for c in range(128)]
    pieces = [
        lambda: "".join(rng.choices(string.ascii_letters, k=rng.randint(1, 12))),
        lambda: "".join(rng.choices(string.digits, k=rng.randint(1, 6))),
        lambda: rng.choice(ascii_chars),
        lambda: rng.choice(string.punctuation),
        lambda: rng.choice([" ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f"]),
        lambda: "".join(rng.choices(string.ascii_lowercase, k=rng.randint(95, 130))),  # WordPiece's 100-char cap
        lambda: rng.choice(["[UNK]", "[PAD]", "[unk]", "[CLS]", "##ing", "un##"]),
        lambda: rng.choice(["caf\u00e9", "\u4e2d\u6587", "zero\u200bwidth", "\u0430", "\ufffd"]),  # non-ASCII
    ]
    weights = [40, 8, 10, 10, 25, 1, 1, 2]
    texts = []
    for _ in range(n):
        parts = [rng.choices(pieces, weights)[0]() for _ in range(rng.randint(0, 40))]
        texts.append("".join(p + rng.choice(["", " "]) for p in parts))
    return texts


def demo_texts() -> list[str]:
    with open(REPO / "data" / "demo" / "prompts.jsonl", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle]


def test_every_ascii_character_gives_the_tokenizers_ids(tokenizer):
    cached = CachedWordPiece(tokenizer)
    assert cached.cached  # the static model's tokenizer is the lower-casing BERT WordPiece it imitates
    chars = [chr(c) for c in range(128)]
    texts = chars + [f"ab{c}Cd 9{c}x {c}{c} end{c}" for c in chars]
    assert cached.ids(texts) == tokenizer_ids(tokenizer, texts)
    assert len(cached) > 0


def test_random_strings_real_prompts_and_normalized_prompts_give_the_tokenizers_ids(tokenizer):
    real = demo_texts() + background_texts(400)
    texts = random_texts(4000) + real + [normalize(t) for t in real]
    texts.append(" ".join(background_texts(60)))  # far past 512 tokens: truncated as the tokenizer truncates
    cached = CachedWordPiece(tokenizer)
    ours = cached.ids(texts)
    assert ours == tokenizer_ids(tokenizer, texts)
    assert len(ours[-1]) == tokenizer.truncation["max_length"]
    assert cached.ids(texts) == ours  # and again, every word now from the cache


def test_a_full_cache_starts_over_and_stays_exact(tokenizer, monkeypatch):
    monkeypatch.setattr(wordpiece_cache, "MAX_CACHED_WORDS", 50)
    cached = CachedWordPiece(tokenizer)
    texts = [normalize(t) for t in background_texts(300)]
    for start in range(0, len(texts), 10):
        batch = texts[start : start + 10]
        assert cached.ids(batch) == tokenizer_ids(tokenizer, batch)
    every_word = set(" ".join(texts).split())
    assert 0 < len(cached) < len(every_word) / 2  # it started over instead of holding every word


def test_another_kind_of_tokenizer_is_not_imitated(tokenizer):
    from tokenizers import Tokenizer

    cased = Tokenizer.from_str(tokenizer.to_str())
    cased.normalizer = normalizers.BertNormalizer(lowercase=False)
    cached = CachedWordPiece(cased)
    assert not cached.cached
    texts = ["Keep The Case", "keep the case"]
    assert cached.ids(texts) == tokenizer_ids(cased, texts) and len(cached) == 0


def test_static_vectors_come_through_the_cache_bit_for_bit(static_encoder, tokenizer):
    """The word cache changes no vector (test_static_embedding.py compares the mean with torch's)."""
    texts = [normalize(t) for t in background_texts(200)] + ["caf\u00e9 na\u00efve", ""]
    vectors = static_encoder.encode(texts)
    assert static_encoder._static.words_cached > 0
    expected = static_encoder._static.mean_of(tokenizer_ids(tokenizer, texts))
    expected /= np.maximum(np.linalg.norm(expected, axis=1, keepdims=True), 1e-12)
    assert np.array_equal(vectors, expected)


def test_every_unicode_character_gives_the_tokenizers_ids(tokenizer):
    """Each basic-plane character (and the emoji and tag planes) alone, inside words, doubled, upper-cased."""
    codes = [c for c in range(0x10000) if not 0xD800 <= c < 0xE000]
    codes += list(range(0x1F000, 0x1FB00)) + list(range(0x20000, 0x20100)) + list(range(0xE0000, 0xE0080))
    chars = [chr(c) for c in codes]
    texts = [f"{c} x{c}y Ab{c}{c}CD \u00e9{c}1 {c.upper()}z" for c in chars]
    cached = CachedWordPiece(tokenizer)
    assert cached.ids(texts) == tokenizer_ids(tokenizer, texts)
    # nearly every character has an exact per-character form: the fast path is the rule, not the exception
    assert len(cached._inexact) < 0.01 * len(chars)


def test_multilingual_prompts_take_the_fast_path_and_give_the_tokenizers_ids(tokenizer):
    texts = [
        "Объясни, пожалуйста, как работает трансформер — шаг за шагом.",
        "请一步一步地解释这个问题的答案，并给出最终结果。",
        "Écris une réponse détaillée… «très» précise, s’il te plaît!",
        "Schreibe eine ausführliche Begründung für STRASSE und Straße.",
        "ΟΔΟΣ προς την απάντηση: σκέψου βήμα-βήμα.",
        "─═ Rubric ═─ • score 1–5 → explain ✓",
    ]
    texts += [normalize(t) for t in texts]
    cached = CachedWordPiece(tokenizer)
    assert all(cached._words_of(t) is not None for t in texts)
    assert cached.ids(texts) == tokenizer_ids(tokenizer, texts)
