"""Dense dot products and top-k by label: the twin of knn.pyx.

Computes exactly what the C side computes; tests/parity proves it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

def features_dense_dot(
    matrix: npt.NDArray[np.float32], query: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """Row-wise dot products, accumulated in float32 in index order like the C loop."""
    return (matrix @ query).astype(np.float32)


def top_k(
    scores: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The k best scores, descending, ties broken by the lower id; NaN ranks last."""
    n = scores.shape[0]
    k = max(0, min(k, n))
    s = np.where(np.isnan(scores), -np.inf, scores).astype(np.float64)
    order = np.lexsort((np.arange(n), -s))[:k]
    return order.astype(np.int64), scores[order].astype(np.float32)


def max_by_label(
    ids: npt.NDArray[np.int64],
    sims: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int32],
    n_labels: int,
) -> npt.NDArray[np.float32]:
    """Per-label max similarity over the hits; -1.0 (the cosine floor) where no hit."""
    out = np.full(n_labels, -1.0, dtype=np.float32)
    n = labels.shape[0]
    for i, s in zip(ids.tolist(), sims.tolist(), strict=True):
        if 0 <= i < n:
            lab = int(labels[i])
            if 0 <= lab < n_labels and s > out[lab]:
                out[lab] = s
    return out


def top_k_max_by_label(
    scores: npt.NDArray[np.float32], labels: npt.NDArray[np.int32], n_labels: int, k: int
) -> npt.NDArray[np.float32]:
    """max_by_label(*top_k(scores, k), labels, n_labels): per-label max over the top k."""
    if n_labels < 0:
        raise ValueError("n_labels must be >= 0")
    if labels.shape[0] != scores.shape[0]:
        raise ValueError("scores and labels differ in length")
    ids, sims = top_k(scores, k)
    return max_by_label(ids, sims, labels, n_labels)
