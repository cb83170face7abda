"""Plain-Python twins of the compiled core: one module per `.pyx`, same name.

Every function here computes exactly what its C twin computes (same token
counts, same hashes, features equal within float32 rounding); the parity tests
in tests/parity prove it. The constants live in `_constants.py`, which the C
side mirrors in `constants.pxi`; keep both in step.

Character classes come from the interpreter's Unicode database (str.isalpha,
...), which is the very table the C side reads through Py_UNICODE_ISALPHA,
so both sides agree on any input. Lower-casing, by contrast, is a small fixed
table (ASCII, Latin-1, Greek, Cyrillic) so that hashed features do not change
with the Python version's Unicode tables.
"""

from __future__ import annotations

from .._constants import SCALAR_NAMES
from .classify import combine_categories
from .compress import chunk_stats, select_chunks, split_chunks
from .embed import EmbedTable, embed, embed_ids
from .features import extract, extract_many
from .knn import features_dense_dot, max_by_label, top_k, top_k_max_by_label
from .phrases import phrase_hash, phrase_hits, word_hashes
from .policy import pareto_dominators, score_models
from .tokens import count_chat_tokens, count_tokens, script_of

__all__ = [
    "SCALAR_NAMES",
    "EmbedTable",
    "chunk_stats",
    "combine_categories",
    "count_chat_tokens",
    "count_tokens",
    "embed",
    "embed_ids",
    "extract",
    "extract_many",
    "features_dense_dot",
    "max_by_label",
    "pareto_dominators",
    "phrase_hash",
    "phrase_hits",
    "score_models",
    "script_of",
    "select_chunks",
    "split_chunks",
    "top_k",
    "top_k_max_by_label",
    "word_hashes",
]
