"""promptsim's core library: a prompt's signals, the index directory and the search engine.

- Signals (`signals.py`): normalization (`normalize.py`: NFKC, invisible characters,
  confusables, casefold, whitespace), one embedding (`embedding.py`, `onnx_runtime.py`,
  `wordpiece_cache.py`) and three MinHashes (`minhash.py`: the whole prompt and its head and
  tail windows), bit-compatible with datasketch. The models' names and cache: `models.py`;
  building them offline (`promptsim models build`): `model_build.py`.
- The index directory (`index.py`, docs/core-engine.md): SQLite as the truth (`store.py`),
  FAISS (`vectors.py`), the MinHash LSHs (`lsh.py`), in-memory signatures and row facts
  (`signature_table.py`, `row_facts.py`), checksummed snapshot files (`snapshot.py`), the write
  lock (`lock.py`), the last, resumable step of a snapshot restore (`restore.py`) and the
  manifest (`manifest.py`).
- Search (`engine.py`): siblings fused from cosine, Jaccard and window scores, and the campaign
  family a query belongs to (`family_index.py`, `family_encoder.py`, `wrappers.py`,
  `segments.py`, `intent.py`).
- `errors.py`: the documented error tree every edge maps to its own form.
Nothing here imports from `indexer/`, `api/` or `promptsim/`.
"""

from .embedding import Encoder, SentenceTransformerEncoder
from .engine import Hit, SearchEngine, SearchFilters, SearchResult, Summary
from .errors import (
    BadRecord,
    IndexCorrupt,
    IndexLocked,
    IndexMismatch,
    IndexNotFound,
    PromptNotFound,
    PromptSimError,
)
from .index import PromptIndex
from .manifest import IndexSettings
from .minhash import MinHasher
from .models import DEFAULT_MODEL
from .normalize import normalize
from .records import Prompt

__all__ = [
    "DEFAULT_MODEL",
    "BadRecord",
    "Encoder",
    "Hit",
    "IndexCorrupt",
    "IndexLocked",
    "IndexMismatch",
    "IndexNotFound",
    "IndexSettings",
    "MinHasher",
    "Prompt",
    "PromptIndex",
    "PromptNotFound",
    "PromptSimError",
    "SearchEngine",
    "SearchFilters",
    "SearchResult",
    "SentenceTransformerEncoder",
    "Summary",
    "normalize",
]
