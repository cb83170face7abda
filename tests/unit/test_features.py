"""Unit tests for routecore.routing.features."""

from __future__ import annotations

import numpy as np
import pytest

from routecore.errors import InvalidRequest
from routecore.routing.features import SCALAR_NAMES, FeatureExtractor


@pytest.mark.parametrize("dim", [0, 15, 100, 3, -8, 2**21])
def test_rejects_bad_dim(dim: int) -> None:
    """A dim that is not a power of two in range raises InvalidRequest."""
    with pytest.raises(InvalidRequest):
        FeatureExtractor(dim)


def test_rejects_non_str_text() -> None:
    """Extracting from a non-str raises InvalidRequest."""
    with pytest.raises(InvalidRequest):
        FeatureExtractor(64).extract(123)  # type: ignore[arg-type]


def test_shapes_dtypes_and_determinism() -> None:
    """Outputs have the documented shapes and dtypes and repeat exactly."""
    fx = FeatureExtractor(256)
    v, s = fx.extract("Explain how a hash map works.")
    assert fx.dim == 256 and v.shape == (256,) and v.dtype == np.float32
    assert s.shape == (len(SCALAR_NAMES),) and s.dtype == np.float32
    v2, s2 = fx.extract("Explain how a hash map works.")
    assert np.array_equal(v, v2) and np.array_equal(s, s2)


def test_case_insensitive_and_similar_texts_are_close() -> None:
    """Case does not change the vector, and a paraphrase is closer than an unrelated text."""
    fx = FeatureExtractor(1024)
    a, _ = fx.extract("Write a Python function to sort a list")
    b, _ = fx.extract("WRITE A PYTHON FUNCTION TO SORT A LIST")
    c, _ = fx.extract("Write a python function that sorts the list")
    d, _ = fx.extract("Quelle est la capitale de la France ?")
    assert np.allclose(a, b)
    assert float(a @ c) > float(a @ d) + 0.2


def test_scalar_cues() -> None:
    """Code, math, question and instruction cues fire on text that has them."""
    fx = FeatureExtractor(64)
    ix = {n: i for i, n in enumerate(SCALAR_NAMES)}
    _, code = fx.extract("```python\nimport os\ndef f(x):\n    return x\n```")
    _, prose = fx.extract("The weather was pleasant and we walked along the river.")
    _, math = fx.extract("Solve 3x^2 + 2x - 5 = 0 and compute the sum of the roots.")
    _, q = fx.extract("What is the capital of France?")
    _, cjk = fx.extract("中文文本")
    assert code[ix["code"]] > 0.5 > prose[ix["code"]]
    assert math[ix["math"]] > prose[ix["math"]] + 0.3
    assert q[ix["question"]] == 1.0 and prose[ix["question"]] == 0.0
    assert math[ix["instruction"]] > 0 and prose[ix["instruction"]] == 0
    assert cjk[ix["frac_cjk"]] == 1.0
