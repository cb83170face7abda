"""Exemplar index: labelled, L2-normalised feature vectors searched by cosine.

Small indexes are searched by brute force: numpy's BLAS matrix-vector
product (sgemv; about 3x the core's plain C dot loop, features_dense_dot, at
48 x 1024), then the core's top-k (FAISS's per-call overhead dominates below
BRUTE_FORCE_MAX_ROWS rows); larger ones by a FAISS IndexFlatIP. Both return
the same ids (ties by the lower id) and the same similarities within float32
rounding; tests/unit/test_catalog.py checks it. Vectors can be added at any time (feedback learning).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from routecore import _fast
from routecore.errors import InvalidRequest

__all__ = ["BRUTE_FORCE_MAX_ROWS", "ExemplarIndex"]

# Below this many rows the core's brute-force dot product beats a FAISS call.
BRUTE_FORCE_MAX_ROWS = 256
_GROW = 256


class ExemplarIndex:
    """Cosine search over labelled exemplars; not thread-safe for concurrent add."""

    def __init__(self, dim: int) -> None:
        """Raises InvalidRequest unless dim is a positive int."""
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise InvalidRequest(f"dim must be a positive int, got {dim!r}")
        self._dim = dim
        self._vecs = np.zeros((0, dim), dtype=np.float32)
        self._n = 0
        self._labels = np.zeros(0, dtype=np.int32)
        # Views of the filled rows, refreshed by add (saves two slices per query).
        self._rows = self._vecs[:0]
        self._row_labels = self._labels[:0]
        self._faiss: Any = None  # built lazily once the index outgrows brute force

    @property
    def dim(self) -> int:
        """Vector length."""
        return self._dim

    @property
    def labels(self) -> npt.NDArray[np.int32]:
        """Label of each row, a read-only view."""
        v = self._labels[: self._n]
        v.flags.writeable = False
        return v

    def __len__(self) -> int:
        return self._n

    def add(self, vectors: npt.ArrayLike, labels: Sequence[int]) -> None:
        """Append rows (float32[m, dim], expected L2-normalised) with their int labels."""
        arr = self._check_matrix(vectors)
        labs = np.asarray(labels)
        if labs.ndim != 1 or labs.shape[0] != arr.shape[0]:
            raise InvalidRequest(
                f"labels must be a sequence of {arr.shape[0]} ints, got shape {labs.shape}"
            )
        if labs.size and (labs.dtype.kind not in "iu" or labs.min() < 0 or labs.max() > 2**31 - 1):
            raise InvalidRequest("labels must be non-negative int32 values")
        m = arr.shape[0]
        if m == 0:
            return
        need = self._n + m
        if need > self._vecs.shape[0]:
            cap = max(need, 2 * self._vecs.shape[0], _GROW)
            vecs = np.zeros((cap, self._dim), dtype=np.float32)
            vecs[: self._n] = self._vecs[: self._n]
            lab = np.zeros(cap, dtype=np.int32)
            lab[: self._n] = self._labels[: self._n]
            self._vecs, self._labels = vecs, lab
        self._vecs[self._n : need] = arr
        self._labels[self._n : need] = labs.astype(np.int32)
        self._n = need
        self._rows = self._vecs[:need]
        self._row_labels = self._labels[:need]
        if self._faiss is not None:
            self._faiss.add(arr)
        elif self._n > BRUTE_FORCE_MAX_ROWS:
            self._build_faiss()

    def search(
        self, query: npt.ArrayLike, k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The k most similar rows: (ids int64[k], sims float32[k]), best first.

        Ties go to the lower id. Slots past len(self) hold id -1 and -inf.
        """
        q = self._check_query(query)
        _check_k(k)
        if self._faiss is not None and self._n > BRUTE_FORCE_MAX_ROWS:
            return self._search_faiss(q, k)
        return self._search_brute(q, k)

    def nearest_labels(
        self, query: npt.ArrayLike, n_labels: int, k: int
    ) -> npt.NDArray[np.float32]:
        """Per-label max similarity over the top k hits; -1.0 for labels with no hit."""
        if isinstance(n_labels, bool) or not isinstance(n_labels, int) or n_labels < 0:
            raise InvalidRequest(f"n_labels must be a non-negative int, got {n_labels!r}")
        q = self._check_query(query)
        _check_k(k)
        out: npt.NDArray[np.float32]
        if self._faiss is not None and self._n > BRUTE_FORCE_MAX_ROWS:
            ids, sims = self._search_faiss(q, k)
            out = _fast.max_by_label(ids, sims, self._row_labels, n_labels)
            return out
        # Small index: BLAS scores, then top-k and the per-label max in one core
        # call (when k >= rows it skips the top-k: every row is a hit).
        scores = self._rows @ q
        out = _fast.top_k_max_by_label(scores, self._row_labels, n_labels, k)
        return out

    # -- internals

    def _search_brute(
        self, q: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        scores = self._rows @ q  # BLAS sgemv, float32
        ids, sims = _fast.top_k(scores, k)
        return _pad(ids, sims, k)

    def _search_faiss(
        self, q: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        kk = min(k, self._n)
        sims, ids = self._faiss.search(q.reshape(1, -1), kk)
        ids64 = ids[0].astype(np.int64)
        sims32 = sims[0].astype(np.float32)
        # FAISS does not promise the lower id on exact ties: re-sort so both
        # paths agree (a stable sort on -sim keeps id order within a tie).
        order = np.lexsort((ids64, -sims32.astype(np.float64)))
        return _pad(ids64[order], sims32[order], k)

    def _build_faiss(self) -> None:
        import faiss  # deferred: importing FAISS costs ~100 ms

        index = faiss.IndexFlatIP(self._dim)
        index.add(self._vecs[: self._n])
        self._faiss = index

    def _check_matrix(self, vectors: npt.ArrayLike) -> npt.NDArray[np.float32]:
        arr = np.asarray(vectors)
        if arr.dtype != np.float32:
            raise InvalidRequest(f"vectors must be float32, got {arr.dtype}")
        if arr.ndim != 2 or arr.shape[1] != self._dim:
            raise InvalidRequest(f"vectors must have shape (m, {self._dim}), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise InvalidRequest("vectors must be finite")
        return np.ascontiguousarray(arr)

    def _check_query(self, query: npt.ArrayLike) -> npt.NDArray[np.float32]:
        if (
            type(query) is np.ndarray
            and query.dtype == np.float32
            and query.shape == (self._dim,)
            and query.flags.c_contiguous
        ):
            return query  # the common case, without the conversions below
        q = np.asarray(query)
        if q.dtype != np.float32:
            raise InvalidRequest(f"query must be float32, got {q.dtype}")
        if q.shape != (self._dim,):
            raise InvalidRequest(f"query must have shape ({self._dim},), got {q.shape}")
        return np.ascontiguousarray(q)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InvalidRequest(f"k must be a non-negative int, got {k!r}")


def _pad(
    ids: npt.NDArray[np.int64], sims: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    if ids.shape[0] == k:
        return ids, sims
    out_ids = np.full(k, -1, dtype=np.int64)
    out_sims = np.full(k, -np.inf, dtype=np.float32)
    out_ids[: ids.shape[0]] = ids
    out_sims[: ids.shape[0]] = sims
    return out_ids, out_sims
