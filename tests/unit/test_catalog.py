"""Unit tests for routecore.routing.catalog."""

from __future__ import annotations

import numpy as np
import pytest

from routecore.errors import InvalidRequest
from routecore.routing import catalog
from routecore.routing.catalog import ExemplarIndex


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    m = rng.standard_normal((n, d)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_validation() -> None:
    """Wrong dtype, shape, label count or k raise InvalidRequest."""
    idx = ExemplarIndex(8)
    with pytest.raises(InvalidRequest):
        idx.add(np.zeros((2, 8), dtype=np.float64), [0, 1])
    with pytest.raises(InvalidRequest):
        idx.add(np.zeros((2, 7), dtype=np.float32), [0, 1])
    with pytest.raises(InvalidRequest):
        idx.add(np.zeros((2, 8), dtype=np.float32), [0])
    with pytest.raises(InvalidRequest):
        idx.search(np.zeros(8, dtype=np.float32), -1)
    with pytest.raises(InvalidRequest):
        idx.search(np.zeros(9, dtype=np.float32), 1)


def test_empty_and_padding() -> None:
    """Searching past the number of rows pads with id -1 and -inf."""
    idx = ExemplarIndex(4)
    ids, sims = idx.search(np.ones(4, dtype=np.float32), 3)
    assert ids.tolist() == [-1, -1, -1] and np.isneginf(sims).all()
    idx.add(np.eye(4, dtype=np.float32)[:1], [2])
    ids, sims = idx.search(np.eye(4, dtype=np.float32)[0], 2)
    assert ids.tolist() == [0, -1] and sims[0] == pytest.approx(1.0)
    assert idx.nearest_labels(np.eye(4, dtype=np.float32)[0], 3, 2).tolist() == [-1.0, -1.0, 1.0]


def test_brute_force_and_faiss_agree() -> None:
    """Brute force and FAISS return the same ids and sims as rows are added online."""
    rng = np.random.default_rng(0)
    d = 32
    idx = ExemplarIndex(d)
    twin = ExemplarIndex(d)
    data = _unit(rng, catalog.BRUTE_FORCE_MAX_ROWS + 300, d)
    labels = rng.integers(0, 7, data.shape[0]).tolist()
    idx.add(data[:100], labels[:100])
    assert idx._faiss is None  # still brute force
    idx.add(data[100:], labels[100:])
    assert idx._faiss is not None and len(idx) == data.shape[0]
    twin.add(data, labels)
    for q in _unit(rng, 20, d):
        ids_f, sims_f = idx.search(q, 10)
        ids_b, sims_b = idx._search_brute(q, 10)
        np.testing.assert_array_equal(ids_f, ids_b)
        np.testing.assert_allclose(sims_f, sims_b, atol=1e-5)
        want = np.full(7, -1.0, dtype=np.float32)
        for i, s in zip(ids_b, sims_b, strict=True):
            want[labels[i]] = max(want[labels[i]], s)
        np.testing.assert_allclose(idx.nearest_labels(q, 7, 10), want, atol=1e-5)


def test_ties_go_to_lower_id() -> None:
    """Duplicate rows tie, and the lower id comes first on both paths."""
    v = np.tile(np.eye(8, dtype=np.float32)[:1], (catalog.BRUTE_FORCE_MAX_ROWS + 5, 1))
    idx = ExemplarIndex(8)
    idx.add(v, [0] * v.shape[0])
    ids, _ = idx.search(v[0], 5)
    assert ids.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("k", [0, 1, 16, 47, 48, 100])
def test_nearest_labels_matches_search(k: int) -> None:
    """nearest_labels equals the per-label max over search()'s hits, k below and above rows."""
    rng = np.random.default_rng(k)
    data = _unit(rng, 48, 64)
    labels = rng.integers(0, 9, 48).tolist()
    idx = ExemplarIndex(64)
    idx.add(data, labels)
    for q in _unit(rng, 10, 64):
        ids, sims = idx.search(q, k)
        want = np.full(10, -1.0, dtype=np.float32)
        for i, s in zip(ids.tolist(), sims.tolist(), strict=True):
            if i >= 0:
                want[labels[i]] = max(want[labels[i]], s)
        np.testing.assert_array_equal(idx.nearest_labels(q, 10, k), want)
    with pytest.raises(InvalidRequest):
        idx.nearest_labels(data[0], 9, -1)
    with pytest.raises(InvalidRequest):
        idx.nearest_labels(data[0].astype(np.float64), 9, 1)
