"""The static model in numpy (search/static_embedding.py) against the path it replaced.

The reference is sentence-transformers' own StaticEmbedding.from_model2vec on torch, used the
way search/embedding.py used it before: the tokenizer's ids into its EmbeddingBag, `.float()`,
then our float32 normalization; and its state dict for the checksum. Everything is compared
bit for bit, on the real static model and on model2vec folders of the other kinds it loads.
"""

import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from search.embedding import SentenceTransformerEncoder
from search.models import STATIC_DIMS, STATIC_MODEL, resolve_model
from search.normalize import normalize
from search.static_embedding import StaticEmbedding
from tests.conftest import REPO, background_texts

# Texts with no token at all (empty, whitespace, only characters BERT's normalizer drops): zeros.
NO_TOKENS = ["", " ", "\t\r\n  ", "\x00\x01\x7f", "\u200b", "\ufeff\u00ad", "\u0300\u0301"]  # last: accents alone
EDGE = [
    "[UNK]",  # a special token's text, matched before normalization
    "[CLS] [SEP] [PAD] [MASK] [unused7]",
    "\ufffd\ufffd \U0001f642\U0001f643 \U000e0041",  # replacement characters, emoji, a tag character: [UNK]
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",  # Thai: [UNK]
    "a",
    "ALL CAPS, Mixed Case; punctuation!!! ... ???",
]
MULTILINGUAL = [
    "\u4e2d\u6587 and \u0430 homoglyph",
    "Pouvez-vous r\u00e9sumer ce texte en fran\u00e7ais, s'il vous pla\u00eet ?",
    "\u00bfPuedes explicar c\u00f3mo funciona la fotos\u00edntesis?",
    "Erkl\u00e4re mir bitte die Relativit\u00e4tstheorie. Stra\u00dfe, \u00c4rger, \u00fc",
    "\u041e\u0431\u044a\u044f\u0441\u043d\u0438, \u043a\u0430\u043a \u0440\u0430\u0431\u043e\u0442\u0430\u0435\u0442 "
    "\u044d\u0442\u043e\u0442 \u0430\u043b\u0433\u043e\u0440\u0438\u0442\u043c.",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3092\u7ffb\u8a33\u3057\u3066\u304f\u3060\u3055\u3044\u3002",
    "\u0645\u0631\u062d\u0628\u0627\u060c \u0643\u064a\u0641 \u062d\u0627\u0644\u0643\u061f",
    "\u0928\u092e\u0938\u094d\u0924\u0947, \u0906\u092a \u0915\u0948\u0938\u0947 \u0939\u0948\u0902?",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc744 \uc694\uc57d\ud574 \uc8fc\uc138\uc694",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "\u1f08\u03c1\u03c7\u03b9\u03bc\u03ae\u03b4\u03b7\u03c2 \u03ba\u03b1\u03b9 "
    "\u03b7 \u03bb\u03bf\u03b3\u03b9\u03ba\u03ae",
]
LONG = [
    "explain step by step how you reached the answer " * 200,  # ~1,800 tokens: truncated to 512
    "\u8bf7\u9010\u6b65\u89e3\u91ca\u4f60\u7684\u63a8\u7406\u8fc7\u7a0b\u3002" * 120,  # non-ASCII, truncated
    " ".join(background_texts(60)),
]


def demo_texts() -> list[str]:
    with open(REPO / "data" / "demo" / "prompts.jsonl", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle]


def reference_model(folder):  # type: ignore[no-untyped-def]
    """What search/embedding.py loaded before: SentenceTransformer(modules=[StaticEmbedding.from_model2vec])."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding as TorchStaticEmbedding

    return SentenceTransformer(modules=[TorchStaticEmbedding.from_model2vec(str(folder))], device="cpu")


def reference_vectors(model, texts: list[str], *, normalized: bool = True) -> np.ndarray:
    """The old `_encode_static` (the tokenizer's ids into torch's EmbeddingBag) and encode()'s normalization."""
    import torch

    module = model[0]
    ids = [e.ids for e in module.tokenizer.encode_batch_fast(texts, add_special_tokens=False)]
    lengths = [len(i) for i in ids]
    offsets = torch.tensor(np.concatenate(([0], np.cumsum(lengths)[:-1])), dtype=torch.long)
    with torch.inference_mode():
        vectors = module.embedding(torch.tensor(sum(ids, []), dtype=torch.long), offsets).float().numpy()
    if normalized:
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


def reference_checksum(model) -> str:  # type: ignore[no-untyped-def]
    """The checksum every existing static index stores: sha256 over the state dict's names and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def static_encoder():
    return SentenceTransformerEncoder(STATIC_MODEL)


@pytest.fixture(scope="module")
def reference():
    return reference_model(resolve_model(STATIC_MODEL))


def test_vectors_equal_sentence_transformers_bit_for_bit(static_encoder, reference):
    demo = demo_texts()
    texts = [*demo, *(normalize(t) for t in demo[:500]), *MULTILINGUAL, *EDGE, *NO_TOKENS, *LONG]
    ours = static_encoder.encode(texts)
    theirs = reference_vectors(reference, texts)
    assert ours.dtype == np.float32 and ours.shape == (len(texts), STATIC_DIMS)
    assert ours.tobytes() == theirs.tobytes()  # every bit, signs of zeros included
    # again, every word now from the cache, one text at a time and in a batch of another size
    assert static_encoder.encode(texts[-40:]).tobytes() == theirs[-40:].tobytes()
    assert static_encoder.encode([MULTILINGUAL[0]]).tobytes() == theirs[len(demo) + 500].tobytes()
    # no tokens at all: a zero vector (similar to nothing), as torch's empty bag gives
    no_tokens = ours[len(texts) - len(LONG) - len(NO_TOKENS) : len(texts) - len(LONG)]
    assert not no_tokens.any()
    # every other text has tokens, and a long one is truncated to the model's 512
    assert all(np.linalg.norm(ours[: -len(LONG) - len(NO_TOKENS)], axis=1) > 0.99)
    assert [len(ids) for ids in static_encoder._static.token_ids(LONG)] == [512, 512, 512]


def test_raw_means_equal_sentence_transformers_encode(static_encoder, reference):
    """sentence-transformers' own encode() (its preprocess and forward, float16) gives the same means."""
    texts = [*background_texts(300), *MULTILINGUAL, *EDGE, *LONG]
    theirs = reference.encode(texts, normalize_embeddings=False, convert_to_numpy=True, show_progress_bar=False)
    assert theirs.dtype == np.float16
    assert static_encoder._static.embed(texts).tobytes() == theirs.astype(np.float32).tobytes()


def test_the_tokenizer_is_configured_as_from_model2vec_configures_it(static_encoder, reference):
    ours, theirs = static_encoder._static.tokenizer, reference[0].tokenizer
    assert ours.to_str() == theirs.to_str()  # normalizer, pre-tokenizer, model, truncation, padding
    assert ours.truncation == theirs.truncation and ours.truncation["max_length"] == 512
    assert ours.padding is None and theirs.padding is None


def test_the_checksum_is_the_state_dict_checksum(static_encoder, reference):
    assert static_encoder.checksum == reference_checksum(reference)
    assert static_encoder.dim == reference.get_embedding_dimension() == STATIC_DIMS
    assert static_encoder._static.weights.dtype == reference[0].embedding.weight.detach().numpy().dtype == np.float16


def test_every_bag_length_gives_embeddingbags_mean(static_encoder, reference):
    """Random token ids, every bag length from 0 to 600 and then some: torch's float32 sums, two roundings."""
    import torch

    rng = np.random.default_rng(0)
    lengths = np.concatenate([np.arange(601), rng.integers(0, 200, 2000)])
    rng.shuffle(lengths)
    flat = rng.integers(0, static_encoder._static.weights.shape[0], int(lengths.sum()))
    bags = np.split(flat, np.cumsum(lengths)[:-1])
    offsets = torch.tensor(np.concatenate(([0], np.cumsum(lengths)[:-1])))
    with torch.inference_mode():
        theirs = reference[0].embedding(torch.from_numpy(flat), offsets).float().numpy()
    assert static_encoder._static.mean_of([bag.tolist() for bag in bags]).tobytes() == theirs.tobytes()


@pytest.mark.parametrize("kind", ["float32", "vocabulary-quantized"])
def test_other_model2vec_models_load_alike(tmp_path, kind):
    """float32 weights; a token mapping with per-token weights (folded as sentence-transformers folds them)."""
    from safetensors.numpy import save_file

    source = resolve_model(STATIC_MODEL)
    folder = tmp_path / kind
    folder.mkdir()
    shutil.copy(f"{source}/tokenizer.json", folder / "tokenizer.json")
    config = json.loads(Path(source, "config.json").read_text())
    rng = np.random.default_rng(1)
    embeddings = StaticEmbedding.load(Path(source)).weights.astype(np.float32)
    if kind == "float32":
        tensors = {"embeddings": embeddings + rng.normal(0, 1e-3, embeddings.shape).astype(np.float32)}
        tensors["embeddings"][:, 7] = -0.0  # torch sums these to +0.0
        config["max_length"] = None  # no truncation at all
    else:
        clusters = rng.normal(0, 0.1, (500, STATIC_DIMS)).astype(np.float16)
        tensors = {
            "embeddings": clusters,
            "mapping": rng.integers(0, 500, len(embeddings)).astype(np.int32),
            "weights": rng.uniform(0.2, 2.0, len(embeddings)).astype(np.float64),
        }
        config["max_length"] = 64
        config["vocabulary_quantization"] = 500
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))

    reference = reference_model(folder)
    ours = SentenceTransformerEncoder(str(folder))
    assert ours.backend == "static" and ours._static.weights.dtype == np.float32
    assert ours._static.tokenizer.to_str() == reference[0].tokenizer.to_str()
    assert ours.checksum == reference_checksum(reference)
    texts = [*background_texts(200), *MULTILINGUAL, *EDGE, *NO_TOKENS, *LONG]
    assert ours.encode(texts).tobytes() == reference_vectors(reference, texts).tobytes()
    expected_lengths = [1800, 64][kind != "float32"]
    assert len(ours._static.token_ids(LONG[:1])[0]) == expected_lengths


def test_weights_it_cannot_average_exactly_are_refused(tmp_path):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(f"{resolve_model(STATIC_MODEL)}/tokenizer.json")
    with pytest.raises(ValueError, match="float16 or float32"):
        StaticEmbedding(np.zeros((tokenizer.get_vocab_size(), 8), np.int8), tokenizer)


def test_a_pickled_encoder_carries_no_model_and_reloads_the_same(static_encoder):
    texts = background_texts(50)
    vectors = static_encoder.encode(texts)
    copy = pickle.loads(pickle.dumps(static_encoder))
    assert "_static" not in copy.__dict__ and len(pickle.dumps(static_encoder)) < 2_000
    assert copy.encode(texts).tobytes() == vectors.tobytes() and copy.checksum == static_encoder.checksum


def test_static_embedding_imports_no_torch_transformers_or_sentence_transformers():
    probe = (
        "import pickle, sys\n"
        "from search.embedding import SentenceTransformerEncoder\n"
        "encoder = SentenceTransformerEncoder('static-minilm')\n"
        "vectors = encoder.encode(['hello world', 'caf\\u00e9 \\u4e2d\\u6587', ''])\n"
        "assert vectors.shape == (3, encoder.dim) and encoder.checksum and encoder.runtime == 'numpy'\n"
        "pickle.loads(pickle.dumps(encoder)).encode(['again'])\n"
        "heavy = ('torch', 'transformers', 'sentence_transformers', 'model2vec', 'onnxruntime', 'huggingface_hub')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
