"""promptsim's core library: prompt representations, the index directory and the search engine."""

from .embedding import DEFAULT_MODEL, Encoder, SentenceTransformerEncoder
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
