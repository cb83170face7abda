"""The shipped static sentence embedding (routing.embedding)."""

from __future__ import annotations

import numpy as np
import pytest

from routecore.errors import InvalidRequest
from routecore.routing.embedding import StaticEmbedder


@pytest.fixture(scope="module")
def emb() -> StaticEmbedder:
    return StaticEmbedder.shipped()


def test_shipped_vectors_load_and_are_unit_length(emb: StaticEmbedder) -> None:
    """The package data loads: 128-256 dims, a WordPiece vocabulary, unit vectors out."""
    assert 128 <= emb.dim <= 256 and emb.n_tokens > 20_000
    v = emb.embed("Write a haiku about autumn rain.")
    assert v.dtype == np.float32 and v.shape == (emb.dim,)
    assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5


def test_uses_the_models_wordpiece_vocabulary(emb: StaticEmbedder) -> None:
    """Known words are single tokens, rare ones split into '##' pieces, accents fold."""
    assert len(emb.token_ids("Café unbelievable")) == 2
    assert len(emb.token_ids("antidisestablishment")) >= 3
    assert emb.token_ids("cafe").tolist() == emb.token_ids("Café").tolist()
    assert emb.embed("\x00\x01 ???").shape == (emb.dim,)


def test_meaning_not_just_words(emb: StaticEmbedder) -> None:
    """A paraphrase with no shared content word is nearer than an unrelated prompt."""
    a = emb.embed("Pen a sonnet about the sea at night")
    b = emb.embed("Write a poem about the ocean in the dark")
    c = emb.embed("Compute the derivative of x cubed")
    assert float(a @ b) > float(a @ c) + 0.1


def test_bad_input_is_refused(emb: StaticEmbedder) -> None:
    """A non-str text, a bad table and a bad max_tokens raise InvalidRequest."""
    with pytest.raises(InvalidRequest):
        emb.embed(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        StaticEmbedder(["a", "a"], np.zeros((2, 4), np.float32))
    with pytest.raises(InvalidRequest):
        StaticEmbedder(["a"], np.zeros((1, 4), np.float32), max_tokens=0)
    assert not emb.embed("").any()
