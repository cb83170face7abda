"""The compiled core and its pure-Python twins.

Each function comes three ways: `XxxC` (the extension), `XxxPy` (the plain
Python twin in `_pure`) and `Xxx`, the default: C, unless the extension is
missing or `ROUTECORE_NO_EXTENSIONS=1` was set when this package was first
imported. The environment is read here, once, because the choice must be
fixed before any caller binds a function (callers do
`from routecore._fast import extract`). Application code uses the public
wrappers in routecore.routing.tokens / features / catalog instead of this package.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from . import _pure
from ._constants import PHRASE_MAX_WORDS, SCALAR_NAMES

__all__ = [
    "HAVE_EXTENSIONS",
    "PHRASE_MAX_WORDS",
    "SCALAR_NAMES",
    "EmbedTable",
    "EmbedTableC",
    "EmbedTablePy",
    "chunk_stats",
    "chunk_statsC",
    "chunk_statsPy",
    "combine_categories",
    "combine_categoriesC",
    "combine_categoriesPy",
    "count_chat_tokens",
    "count_chat_tokensC",
    "count_chat_tokensPy",
    "count_tokens",
    "count_tokensC",
    "count_tokensPy",
    "embed",
    "embedC",
    "embedPy",
    "embed_ids",
    "embed_idsC",
    "embed_idsPy",
    "extract",
    "extractC",
    "extractPy",
    "extract_many",
    "extract_manyC",
    "extract_manyPy",
    "features_dense_dot",
    "features_dense_dotC",
    "features_dense_dotPy",
    "max_by_label",
    "max_by_labelC",
    "max_by_labelPy",
    "pareto_dominators",
    "pareto_dominatorsC",
    "pareto_dominatorsPy",
    "phrase_hash",
    "phrase_hashC",
    "phrase_hashPy",
    "phrase_hits",
    "phrase_hitsC",
    "phrase_hitsPy",
    "score_models",
    "score_modelsC",
    "score_modelsPy",
    "select_chunks",
    "select_chunksC",
    "select_chunksPy",
    "split_chunks",
    "split_chunksC",
    "split_chunksPy",
    "top_k",
    "top_kC",
    "top_kPy",
    "top_k_max_by_label",
    "top_k_max_by_labelC",
    "top_k_max_by_labelPy",
]

count_tokensPy = _pure.count_tokens
count_chat_tokensPy = _pure.count_chat_tokens
extractPy = _pure.extract
extract_manyPy = _pure.extract_many
features_dense_dotPy = _pure.features_dense_dot
top_kPy = _pure.top_k
max_by_labelPy = _pure.max_by_label
phrase_hashPy = _pure.phrase_hash
phrase_hitsPy = _pure.phrase_hits
top_k_max_by_labelPy = _pure.top_k_max_by_label
score_modelsPy = _pure.score_models
pareto_dominatorsPy = _pure.pareto_dominators
combine_categoriesPy = _pure.combine_categories
EmbedTablePy = _pure.EmbedTable
embedPy = _pure.embed
embed_idsPy = _pure.embed_ids
chunk_statsPy = _pure.chunk_stats
select_chunksPy = _pure.select_chunks
split_chunksPy = _pure.split_chunks

_core: Any
try:
    from . import _core
except ImportError:  # not built (e.g. a source checkout without build_ext)
    _core = None

HAVE_EXTENSIONS: bool = _core is not None


def _missing(name: str) -> Callable[..., Any]:
    def f(*args: Any, **kwargs: Any) -> Any:
        raise ImportError(f"routecore._fast._core is not built; {name}C is unavailable")

    return f


if _core is not None:
    count_tokensC = _core.count_tokens
    count_chat_tokensC = _core.count_chat_tokens
    extractC = _core.extract
    extract_manyC = _core.extract_many
    features_dense_dotC = _core.features_dense_dot
    top_kC = _core.top_k
    max_by_labelC = _core.max_by_label
    phrase_hashC = _core.phrase_hash
    phrase_hitsC = _core.phrase_hits
    top_k_max_by_labelC = _core.top_k_max_by_label
    score_modelsC = _core.score_models
    pareto_dominatorsC = _core.pareto_dominators
    combine_categoriesC = _core.combine_categories
    EmbedTableC = _core.EmbedTable
    embedC = _core.embed
    embed_idsC = _core.embed_ids
    chunk_statsC = _core.chunk_stats
    select_chunksC = _core.select_chunks
    split_chunksC = _core.split_chunks
else:
    count_tokensC = _missing("count_tokens")
    count_chat_tokensC = _missing("count_chat_tokens")
    extractC = _missing("extract")
    extract_manyC = _missing("extract_many")
    features_dense_dotC = _missing("features_dense_dot")
    top_kC = _missing("top_k")
    max_by_labelC = _missing("max_by_label")
    phrase_hashC = _missing("phrase_hash")
    phrase_hitsC = _missing("phrase_hits")
    top_k_max_by_labelC = _missing("top_k_max_by_label")
    score_modelsC = _missing("score_models")
    pareto_dominatorsC = _missing("pareto_dominators")
    combine_categoriesC = _missing("combine_categories")
    EmbedTableC = _missing("EmbedTable")
    embedC = _missing("embed")
    embed_idsC = _missing("embed_ids")
    chunk_statsC = _missing("chunk_stats")
    select_chunksC = _missing("select_chunks")
    split_chunksC = _missing("split_chunks")

_USE_C = HAVE_EXTENSIONS and os.environ.get("ROUTECORE_NO_EXTENSIONS", "") != "1"

if _USE_C:
    count_tokens = count_tokensC
    count_chat_tokens = count_chat_tokensC
    extract = extractC
    extract_many = extract_manyC
    features_dense_dot = features_dense_dotC
    top_k = top_kC
    max_by_label = max_by_labelC
    phrase_hash = phrase_hashC
    phrase_hits = phrase_hitsC
    top_k_max_by_label = top_k_max_by_labelC
    score_models = score_modelsC
    pareto_dominators = pareto_dominatorsC
    combine_categories = combine_categoriesC
    EmbedTable = EmbedTableC
    embed = embedC
    embed_ids = embed_idsC
    chunk_stats = chunk_statsC
    select_chunks = select_chunksC
    split_chunks = split_chunksC
else:
    count_tokens = count_tokensPy
    count_chat_tokens = count_chat_tokensPy
    extract = extractPy
    extract_many = extract_manyPy
    features_dense_dot = features_dense_dotPy
    top_k = top_kPy
    max_by_label = max_by_labelPy
    phrase_hash = phrase_hashPy
    phrase_hits = phrase_hitsPy
    top_k_max_by_label = top_k_max_by_labelPy
    score_models = score_modelsPy
    pareto_dominators = pareto_dominatorsPy
    combine_categories = combine_categoriesPy
    EmbedTable = EmbedTablePy
    embed = embedPy
    embed_ids = embed_idsPy
    chunk_stats = chunk_statsPy
    select_chunks = select_chunksPy
    split_chunks = split_chunksPy
