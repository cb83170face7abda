"""Types of the compiled core (routecore._fast._core); see _pure.py for semantics."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

SCALAR_NAMES: tuple[str, ...]
__pyx_capi__: dict[str, object]  # Cython's C-API table (cdef functions in _core.pxd)
__test__: dict[str, str]

def count_tokens(text: str) -> int: ...
def count_chat_tokens(roles: Sequence[str], contents: Sequence[str]) -> int: ...
def extract(
    text: str, dim: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], int]: ...
def extract_many(
    texts: list[str], dim: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
def features_dense_dot(
    matrix: npt.NDArray[np.float32], query: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]: ...
def top_k(
    scores: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
def max_by_label(
    ids: npt.NDArray[np.int64],
    sims: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int32],
    n_labels: int,
) -> npt.NDArray[np.float32]: ...
def phrase_hash(phrase: str) -> int: ...
def phrase_hits(text: str, table: npt.ArrayLike, n_max: int) -> npt.NDArray[np.int32]: ...
def top_k_max_by_label(
    scores: npt.NDArray[np.float32], labels: npt.NDArray[np.int32], n_labels: int, k: int
) -> npt.NDArray[np.float32]: ...
def score_models(
    table: npt.ArrayLike,
    probs: npt.ArrayLike | None,
    codes: npt.ArrayLike | None,
    boost: npt.ArrayLike | None,
    overrides: npt.ArrayLike | None,
    complexity: float,
    need: int,
    in_tokens: int,
    out_tokens: int,
    max_cost: float,
    max_latency: float,
    min_quality: float,
    strategy: int,
    wq: float,
    wc: float,
    wl: float,
    out_limit: int = ...,
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int8],
    npt.NDArray[np.int64],
    float,
]: ...
def pareto_dominators(
    q: npt.ArrayLike, cost: npt.ArrayLike, lat: npt.ArrayLike, eligible: npt.ArrayLike
) -> npt.NDArray[np.int64]: ...
def combine_categories(
    sims: npt.ArrayLike | None,
    w: float,
    hits: npt.ArrayLike,
    owners: npt.ArrayLike,
    hard_weight: npt.ArrayLike,
    regex: npt.ArrayLike | None,
    base: npt.ArrayLike,
    log_tokens: float,
    math_score: float,
    code_score: float,
    easy: bool,
) -> tuple[int, float, float, npt.NDArray[np.float64]]: ...

class EmbedTable:
    n_tokens: int
    dim: int
    max_piece: int
    vectors: npt.NDArray[np.float32]
    def __init__(self, tokens: Sequence[str], vectors: npt.ArrayLike) -> None: ...

def embed_ids(table: EmbedTable, text: str, max_tokens: int) -> npt.NDArray[np.int32]: ...
def embed(table: EmbedTable, text: str, max_tokens: int) -> npt.NDArray[np.float32]: ...
def split_chunks(text: str, max_chars: int) -> npt.NDArray[np.int64]: ...
def chunk_stats(
    table: EmbedTable, text: str, spans: npt.ArrayLike, query: npt.ArrayLike, max_tokens: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
def select_chunks(
    scores: npt.ArrayLike, tokens: npt.ArrayLike, protected: npt.ArrayLike, budget: int
) -> npt.NDArray[np.uint8]: ...
