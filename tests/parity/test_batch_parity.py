"""extract_many (C and pure twin) equals extract row by row."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routecore import _fast

if not _fast.HAVE_EXTENSIONS:
    pytest.skip("routecore._fast._core is not built", allow_module_level=True)

texts = st.lists(st.text(max_size=200), max_size=12)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.sampled_from([16, 256]))
def test_extract_many_matches_extract(batch: list[str], dim: int) -> None:
    """Row i of extract_many (C and Python) equals extract(texts[i]): features within 1e-5,
    equal token estimates."""
    vc, sc, tc = _fast.extract_manyC(batch, dim)
    vp, sp, tp = _fast.extract_manyPy(batch, dim)
    assert vc.shape == vp.shape == (len(batch), dim) and vc.dtype == np.float32
    np.testing.assert_allclose(vc, vp, atol=1e-5)
    np.testing.assert_allclose(sc, sp, atol=1e-5)
    assert tc.tolist() == tp.tolist()
    for i, t in enumerate(batch):
        v, s, n = _fast.extractC(t, dim)
        np.testing.assert_array_equal(vc[i], v)
        np.testing.assert_array_equal(sc[i], s)
        assert tc[i] == n


@pytest.mark.parametrize("fn", [_fast.extract_manyC, _fast.extract_manyPy])
def test_extract_many_rejects_non_str(fn: object) -> None:
    """A non-str item is a TypeError naming its index; a bad dim is a ValueError."""
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        fn(["ok", 3], 16)  # type: ignore[operator]
    with pytest.raises(ValueError):
        fn(["ok"], 15)  # type: ignore[operator]
