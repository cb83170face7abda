"""Feature extraction for routing: a hashed n-gram vector plus scalar cues.

`FeatureExtractor(dim).extract(text)` walks the text once and returns

* `vec`, float32[dim]: lower-cased word unigrams (weight 1.0) and bigrams
  (0.7) and character 3-grams (0.5) of the lower-cased text with whitespace
  runs collapsed. Words hash with 64-bit FNV-1a over code points and a
  MurmurHash3 finaliser; a 3-gram hash combines per-character mixes
  (rotate/xor) and a multiplier. The low bits pick one of `dim` buckets and
  the top bit a sign. Each bucket sums its signed weights (exactly, in integer
  tenths, so the compiled core and its pure-Python twin agree), then
  sign(x) * log1p(|x|) and L2 normalisation (an empty text gives the zero
  vector). The hash is seedless and platform-independent, so vectors stored
  on disk stay valid across machines and processes.
* `scalars`, float32[len(SCALAR_NAMES)], in SCALAR_NAMES order; see
  `routecore._fast._constants.SCALAR_NAMES` for each one's definition.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from routecore import _fast
from routecore.errors import InvalidRequest

__all__ = ["SCALAR_NAMES", "FeatureExtractor"]

SCALAR_NAMES: tuple[str, ...] = _fast.SCALAR_NAMES

MIN_DIM = 16
MAX_DIM = 1 << 20


class FeatureExtractor:
    """Turns a prompt into (vec, scalars); cheap to build, safe to share."""

    __slots__ = ("_dim",)

    def __init__(self, dim: int = 1024) -> None:
        """Raises InvalidRequest unless dim is a power of two in [16, 2**20]."""
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise InvalidRequest(f"dim must be an int, not {type(dim).__name__}")
        if dim < MIN_DIM or dim > MAX_DIM or dim & (dim - 1):
            raise InvalidRequest(f"dim must be a power of two in [{MIN_DIM}, {MAX_DIM}], got {dim}")
        self._dim = dim

    @property
    def dim(self) -> int:
        """Length of the hashed vector."""
        return self._dim

    @property
    def n_scalars(self) -> int:
        """Length of the scalar vector."""
        return len(SCALAR_NAMES)

    def extract(self, text: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """(vec float32[dim], scalars float32[len(SCALAR_NAMES)]) for `text`.

        Raises InvalidRequest if `text` is not a str.
        """
        if not isinstance(text, str):
            raise InvalidRequest(f"text must be a str, not {type(text).__name__}")
        vec, scalars, _ = _fast.extract(text, self._dim)
        return vec, scalars

    def extract_counted(
        self, text: str,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], int]:
        """`extract` plus the token estimate (`routing.tokens.count_tokens`), which the
        same walk computes: the router needs both and need not walk the text twice.

        Raises InvalidRequest if `text` is not a str.
        """
        if not isinstance(text, str):
            raise InvalidRequest(f"text must be a str, not {type(text).__name__}")
        vec, scalars, tokens = _fast.extract(text, self._dim)
        return vec, scalars, tokens

    def extract_many(self, texts: list[str]) -> tuple[
            npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """`extract_counted` for every text in one core call: (vecs [n, dim],
        scalars [n, k], token estimates [n]).

        Raises InvalidRequest if an item is not a str.
        """
        try:
            vecs, scalars, tokens = _fast.extract_many(texts, self._dim)
        except TypeError as exc:
            raise InvalidRequest(str(exc)) from exc
        return vecs, scalars, tokens

    def __repr__(self) -> str:
        return f"FeatureExtractor(dim={self._dim})"
