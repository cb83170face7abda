"""Static sentence embedding: what a prompt means, in microseconds, offline.

One vector per WordPiece token, distilled by model2vec from
sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0; see
routecore/data/minilm-static.NOTICE and scripts/build_static_embedding.py).
A prompt's embedding is the L2-normalised mean of its tokens' vectors: the
compiled core tokenizes with the model's own vocabulary and pools in one call
(routecore._fast.embed; the pure twin defines the tokenizer). A 2,000-character
prompt embeds in about 10 us (bench/embedding.py).

    emb = StaticEmbedder.shipped()      # loads the package data (once per process)
    v = emb.embed("Pen a sonnet about the sea at night")   # float32[emb.dim]

Loading reads ~8 MB and builds the vocabulary table (~30 ms): it happens when
a router that needs it is built, never at import.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from routecore import _fast
from routecore._fast._pure.embed import normalize_unicode
from routecore.errors import InvalidRequest

__all__ = ["MAX_TOKENS", "StaticEmbedder"]

F32 = npt.NDArray[np.float32]
# Tokens pooled per text (model2vec's own default): the rest of a long prompt
# adds cost, not meaning; callers pass the part of a prompt that matters.
MAX_TOKENS = 512
_VECTORS = "minilm-static.f16.npy"
_VOCAB = "minilm-static.vocab.txt"


class StaticEmbedder:
    """Token vectors and their vocabulary; immutable, safe to share between threads."""

    __slots__ = ("_max_tokens", "_table")

    def __init__(self, tokens: Sequence[str], vectors: npt.ArrayLike,
                 max_tokens: int = MAX_TOKENS) -> None:
        """Raises InvalidRequest unless vectors is (len(tokens), dim) and tokens are distinct."""
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidRequest(f"max_tokens must be a positive int, got {max_tokens!r}")
        try:
            self._table: Any = _fast.EmbedTable(list(tokens), np.asarray(vectors, dtype=np.float32))
        except ValueError as exc:
            raise InvalidRequest(f"embedding table: {exc}") from None
        self._max_tokens = max_tokens
        normalize_unicode("é")  # build the Unicode tables now, not on the first request

    @classmethod
    def shipped(cls) -> StaticEmbedder:
        """The embedding shipped as package data (loaded once per process)."""
        return _shipped()

    @property
    def dim(self) -> int:
        """Vector length."""
        return int(self._table.dim)

    @property
    def table(self) -> Any:
        """The core's vocabulary table (for core calls that embed many spans at once)."""
        return self._table

    @property
    def n_tokens(self) -> int:
        """Vocabulary size."""
        return int(self._table.n_tokens)

    def embed(self, text: str) -> F32:
        """float32[dim], L2-normalised (zeros when no token of text is in the vocabulary)."""
        if not isinstance(text, str):
            raise InvalidRequest(f"text must be a str, not {type(text).__name__}")
        out: F32 = _fast.embed(self._table, text, self._max_tokens)
        return out

    def token_ids(self, text: str) -> npt.NDArray[np.int32]:
        """The vocabulary ids embed() pools for text (for inspection and tests)."""
        if not isinstance(text, str):
            raise InvalidRequest(f"text must be a str, not {type(text).__name__}")
        out: npt.NDArray[np.int32] = _fast.embed_ids(self._table, text, self._max_tokens)
        return out


@functools.cache
def _shipped() -> StaticEmbedder:
    data = resources.files("routecore").joinpath("data")
    with data.joinpath(_VECTORS).open("rb") as f:
        vectors = np.load(f).astype(np.float32)
    tokens = data.joinpath(_VOCAB).read_text("utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    return StaticEmbedder(tokens, vectors)
