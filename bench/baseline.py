"""The plain pipeline promptsim is measured against: the libraries used as their docs show.

datasketch MinHash (per-token update) into MinHashLSH at 0.7; sentence-transformers encode
into faiss IndexFlatIP (k=10 neighbours at cosine >= 0.9); union of both edge sets through a
plain union-find; a cluster is flagged when it spans at least 5 accounts.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import faiss
import numpy as np
from datasketch import MinHash, MinHashLSH


def _minhash(text: str) -> MinHash:
    m = MinHash(num_perm=128)
    for token in set(text.lower().split()):
        m.update(token.encode("utf8"))
    return m


class Baseline:
    """Build once over a corpus, then cluster and search."""

    def __init__(self, prompts: list[dict], model: Any, *, cosine: float = 0.9, min_accounts: int = 5):
        self.prompts, self.model, self.cosine, self.min_accounts = prompts, model, cosine, min_accounts
        self.seconds: dict[str, float] = {}
        t = time.perf_counter()
        self.minhashes = [_minhash(p["text"]) for p in prompts]
        self.seconds["minhash"] = time.perf_counter() - t
        t = time.perf_counter()
        self.lsh = MinHashLSH(threshold=0.7, num_perm=128)
        for i, m in enumerate(self.minhashes):
            self.lsh.insert(i, m)
        self.seconds["lsh"] = time.perf_counter() - t
        t = time.perf_counter()
        self.vectors = model.encode([p["text"] for p in prompts], normalize_embeddings=True, convert_to_numpy=True)
        self.seconds["embed"] = time.perf_counter() - t
        t = time.perf_counter()
        self.index = faiss.IndexFlatIP(self.vectors.shape[1])
        self.index.add(self.vectors)
        self.seconds["faiss_add"] = time.perf_counter() - t

    def clusters(self) -> list[dict]:
        t = time.perf_counter()
        parent = list(range(len(self.prompts)))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for i, m in enumerate(self.minhashes):
            for j in self.lsh.query(m):
                parent[find(i)] = find(j)
        scores, ids = self.index.search(self.vectors, 11)
        for i in range(len(self.prompts)):
            for s, j in zip(scores[i], ids[i]):
                if j >= 0 and s >= self.cosine:
                    parent[find(i)] = find(int(j))
        groups: dict[int, list[int]] = defaultdict(list)
        for i in range(len(self.prompts)):
            groups[find(i)].append(i)
        out = []
        for members in groups.values():
            if len(members) < 2:
                continue
            accounts = {self.prompts[i]["account_id"] for i in members}
            out.append(
                {
                    "members": [self.prompts[i]["id"] for i in members],
                    "accounts": len(accounts),
                    "flagged": len(accounts) >= self.min_accounts,
                }
            )
        self.seconds["cluster"] = time.perf_counter() - t
        return out

    def search(self, text: str, k: int = 20) -> list[dict]:
        lexical = sorted(
            ((self.minhashes[j].jaccard(_minhash(text)), j) for j in self.lsh.query(_minhash(text))), reverse=True
        )
        vector = self.model.encode([text], normalize_embeddings=True, convert_to_numpy=True)
        _, ids = self.index.search(np.asarray(vector, dtype=np.float32), k)
        order = [j for _, j in lexical] + [int(j) for j in ids[0] if j >= 0]
        seen, hits = set(), []
        for j in order:
            if j not in seen:
                seen.add(j)
                hits.append({"id": self.prompts[j]["id"], "account_id": self.prompts[j]["account_id"]})
        return hits[:k]
