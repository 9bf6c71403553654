"""The families of the last dedup run, kept for search: a pasted prompt finds its campaign family.

A dedup run saves, next to the index, its wrapper vocabulary and for each family cluster the
multilingual embeddings of its forms (its wordings and translations) and its member rows
(`families.npz`, numbers and plain strings only: loading it can run nothing). At search time a
query's wrapper is extracted with the same vocabulary, and the wrapper and each sentence of the
query are embedded with the family encoder; the family whose form is closest (cosine at least
`threshold`) is the query's family. So a German or Chinese rewording of a campaign's instruction,
or its short wrapper before a question nothing in the index resembles, still finds the campaign.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .embedding import Encoder
from .errors import IndexCorrupt
from .intent import sentences
from .segments import Tokenizer
from .wrappers import Vocabulary, WrapperSettings, extract, recurring_parts

FAMILIES_FILE = "families.npz"
# USE multilingual cosines: one instruction's translations and paraphrases score ~0.6-0.85,
# other instructions below ~0.5 (search/family_encoder.py).
MATCH_THRESHOLD = 0.62
MAX_QUERY_PIECES = 12  # sentences of a query embedded
MAX_QUERY_PARTS = 8  # recurring parts of a query embedded, longest first


@dataclass(frozen=True)
class FamilyMatch:
    """The family a query belongs to: its cluster, how close (cosine in [0, 1]) and its member rows."""

    cluster_id: str
    similarity: float
    rows: np.ndarray


@dataclass(frozen=True)
class FamilyIndex:
    """Form embeddings per family cluster and the wrapper vocabulary they were mined with."""

    vocabulary: Vocabulary
    form_vectors: np.ndarray  # (forms, dim) unit rows
    form_family: np.ndarray  # (forms,) index into cluster_ids
    cluster_ids: np.ndarray  # (families,) str
    member_rows: np.ndarray  # concatenated member rows of every family
    member_offsets: np.ndarray  # (families + 1,)
    model: str
    flagged: np.ndarray  # (families,) bool: the family's cluster was flagged as a campaign

    def members(self, family: int) -> np.ndarray:
        return self.member_rows[self.member_offsets[family] : self.member_offsets[family + 1]]

    def match(self, texts: list[str], encoder: Encoder, threshold: float = MATCH_THRESHOLD) -> list[FamilyMatch | None]:
        """The family of each query text, or None when no form is close enough."""
        if not len(self.form_vectors) or not texts:
            return [None] * len(texts)
        best = best_similarity(texts, self.vocabulary, self.form_vectors, encoder)
        return [self._chosen(similarity, threshold) for similarity in best]

    def _chosen(self, similarity: np.ndarray, threshold: float) -> FamilyMatch | None:
        """The closest family at or above threshold, a flagged campaign first: a query can hold two
        templates (a campaign's short instruction around a benign image-prompt template, say), and
        the one an analyst must hear about is the campaign."""
        close = np.flatnonzero(similarity >= threshold)
        if not len(close):
            return None
        campaigns = close[self.flagged[self.form_family[close]]]
        pool = campaigns if len(campaigns) else close
        form = int(pool[np.argmax(similarity[pool])])
        family = int(self.form_family[form])
        return FamilyMatch(str(self.cluster_ids[family]), min(float(similarity[form]), 1.0), self.members(family))

    def save(self, directory: Path) -> None:
        """Write families.npz atomically (uncompressed arrays; strings as fixed-width unicode)."""
        path = directory / FAMILIES_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                hashes=self.vocabulary.hashes,
                support=self.vocabulary.support,
                accounts=self.vocabulary.accounts,
                groups=np.int64(self.vocabulary.groups),
                form_vectors=self.form_vectors.astype(np.float32),
                form_family=self.form_family.astype(np.int64),
                cluster_ids=np.asarray(self.cluster_ids, dtype=str),
                member_rows=self.member_rows.astype(np.int64),
                member_offsets=self.member_offsets.astype(np.int64),
                model=np.asarray(self.model),
                flagged=self.flagged.astype(bool),
            )
        tmp.chmod(0o600)
        tmp.replace(path)

    @classmethod
    def load(cls, directory: Path) -> FamilyIndex | None:
        """The saved families, or None before the first dedup run; a damaged file raises IndexCorrupt."""
        path = directory / FAMILIES_FILE
        if not path.exists():
            return None
        try:
            with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
                vocabulary = Vocabulary(data["hashes"], data["support"], data["accounts"], int(data["groups"]))
                index = cls(
                    vocabulary,
                    data["form_vectors"],
                    data["form_family"],
                    data["cluster_ids"],
                    data["member_rows"],
                    data["member_offsets"],
                    str(data["model"]),
                    data["flagged"].astype(bool),
                )
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise IndexCorrupt(f"{path} is damaged ({exc}); run 'promptsim dedup' to write it again") from exc
        sizes_agree = len(index.member_offsets) == len(index.cluster_ids) + 1 == len(index.flagged) + 1
        if len(index.form_vectors) != len(index.form_family) or not sizes_agree:
            raise IndexCorrupt(f"{path} holds inconsistent arrays; run 'promptsim dedup' to write it again")
        return index


def best_similarity(texts: list[str], vocabulary: Vocabulary, forms: np.ndarray, encoder: Encoder) -> np.ndarray:
    """(texts, forms): each form's cosine to the closest piece of each text (its wrapper, its recurring
    parts, its sentences)."""
    if not len(forms) or not texts:
        return np.full((len(texts), len(forms)), -1.0, np.float32)
    tokenizer, settings = Tokenizer(), WrapperSettings()
    pieces, owner = [], []
    for i, text in enumerate(texts):
        tokens = tokenizer(text)
        found = extract(tokens, vocabulary, settings)
        wrapper = [found[0]] if found else []
        # every recurring part, and all of them joined as a stored wrapper's spans are: when the slot
        # is a few words, the chosen wrapper can be the slot's common phrase (recurring_parts)
        parts = recurring_parts(tokens, vocabulary, settings, MAX_QUERY_PARTS)
        recurring = [p for p in ([" … ".join(parts)] if len(parts) > 1 else []) + parts if p not in wrapper]
        pieces_of_text = sentences(text)
        if len(pieces_of_text) > MAX_QUERY_PIECES:
            half = MAX_QUERY_PIECES // 2  # wrappers sit at either end: keep both ends
            pieces_of_text = pieces_of_text[:half] + pieces_of_text[-half:]
        embedded = wrapper + recurring + pieces_of_text or [text[:2000]]
        pieces += embedded
        owner += [i] * len(embedded)
    vectors = np.asarray(encoder.encode(pieces), np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
    best = np.full((len(texts), len(forms)), -1.0, np.float32)
    np.maximum.at(best, np.asarray(owner, np.int64), vectors @ np.asarray(forms, np.float32).T)
    return best
