import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from search.minhash import _CHUNK_SHINGLES, MinHasher, estimate_jaccard, shingle_hashes
from search.normalize import normalize
from tests.conftest import background_texts


def test_signatures_equal_datasketch_per_shingle_updates():
    """Our bulk path is datasketch's affine32 MinHash with our shingle hashes as hashfunc."""
    texts = [normalize(t) for t in background_texts(60)] + ["a", "ab cd", "x y z", "short"]
    texts.append(" ".join(texts[:60]))  # more shingles than a scratch chunk holds: a buffer of its own
    hasher = MinHasher(num_perm=128, seed=7)
    hashes, offsets = shingle_hashes(texts)
    bulk = hasher.signatures(texts)
    assert np.diff(offsets).max() > _CHUNK_SHINGLES
    for i in range(len(texts)):
        reference = MinHash(num_perm=128, seed=7, hashfunc=int, scheme="affine32")
        for value in hashes[offsets[i] : offsets[i + 1]].tolist():
            reference.update(value)
        assert np.array_equal(reference.hashvalues, bulk[i]), texts[i]


def test_bulk_and_single_prompt_paths_agree():
    texts = [normalize(t) for t in background_texts(50)]
    hasher = MinHasher()
    bulk = hasher.signatures(texts)
    for text, row in zip(texts, bulk):
        assert np.array_equal(hasher.signature(text), row)
    # chunking across the scratch-buffer boundary must not change anything
    assert np.array_equal(hasher.signatures(texts * 40)[-50:], bulk)


def exact_jaccard(a: str, b: str) -> float:
    sa = set(shingle_hashes([a])[0].tolist())
    sb = set(shingle_hashes([b])[0].tolist())
    return len(sa & sb) / len(sa | sb)


def test_estimates_within_expected_error_of_exact_jaccard():
    rng = np.random.default_rng(0)
    base = [normalize(t) for t in background_texts(80) if len(t.split()) > 12]
    pairs = []
    for text in base:
        words = text.split()
        keep = rng.random(len(words)) > rng.uniform(0.05, 0.6)  # drop a random share of words
        pairs.append((text, " ".join(w for w, k in zip(words, keep) if k) or words[0]))
    hasher = MinHasher(num_perm=128)
    errors, sigmas = [], []
    for a, b in pairs:
        sigs = hasher.signatures([a, b])
        exact = exact_jaccard(a, b)
        errors.append(float(estimate_jaccard(sigs[0], sigs[1:])[0]) - exact)
        sigmas.append(np.sqrt(exact * (1 - exact) / 128))  # the estimator's standard deviation
    errors, sigmas = np.asarray(errors), np.asarray(sigmas)
    assert (np.abs(errors) <= 4 * sigmas + 1 / 128).all()  # no pair beyond 4 sigma
    assert abs(errors.mean()) < 3 * np.sqrt((sigmas**2).mean() / len(errors))  # unbiased
    assert np.sqrt((errors**2).mean()) < 1.3 * np.sqrt((sigmas**2).mean())  # spread as theory says


def test_identical_and_disjoint_texts():
    hasher = MinHasher()
    a, b = hasher.signatures(["the same prompt text here", "the same prompt text here"])
    assert estimate_jaccard(a, b[None, :])[0] == 1.0
    c, d = hasher.signatures(["alpha beta gamma delta", "zulu yankee xray whiskey"])
    assert estimate_jaccard(c, d[None, :])[0] < 0.1


def test_empty_text_gets_the_empty_sketch():
    sig = MinHasher().signatures(["", "x"])
    assert (sig[0] == np.iinfo(np.uint32).max).all()
    assert not (sig[1] == np.iinfo(np.uint32).max).all()


def test_lsh_candidates_match_exact_jaccard():
    """Pairs far above the threshold are found by the LSH; pairs far below rarely are."""
    texts = [normalize(t) for t in background_texts(300)]
    rng = np.random.default_rng(1)
    variants = []
    for t in texts[:100]:
        words = t.split()
        i = int(rng.integers(len(words)))
        variants.append(" ".join(words[:i] + ["inserted"] + words[i:]))
    hasher = MinHasher()
    sigs = hasher.signatures(texts)
    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    for i, s in enumerate(sigs):
        lsh.insert(i, hasher.lean(s))
    found = missed = false_hits = 0
    for j, v in enumerate(variants):
        cands = set(lsh.query(hasher.lean(hasher.signature(v))))
        if exact_jaccard(v, texts[j]) >= 0.7:
            found += j in cands
            missed += j not in cands
        false_hits += sum(1 for c in cands if c != j and exact_jaccard(v, texts[c]) < 0.2)
    assert found >= 95 and missed <= 1
    assert false_hits <= 2


def test_too_few_permutations_is_refused():
    with pytest.raises(ValueError, match="num_perm"):
        MinHasher(num_perm=4)
