"""C vs pure-Python parity of the static embedding (skipped when the core is not built)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routecore import _fast
from routecore.routing.embedding import StaticEmbedder

if not _fast.HAVE_EXTENSIONS:
    pytest.skip("routecore._fast._core is not built", allow_module_level=True)

# A small vocabulary with continuations, single characters and non-ASCII pieces,
# so random texts exercise splits, unknown words and the Unicode path.
SMALL = ["[PAD]", "[UNK]", "a", "b", "c", "ab", "abc", "##b", "##c", "##bc", "##a", "!", ".",
         "e", "cafe", "##s", "中", "ж", "жж", "##ж", "1", "##1", "x" * 30, "é"]
_rng = np.random.default_rng(7)
SMALL_VECS = _rng.normal(size=(len(SMALL), 8)).astype(np.float32)

_alphabet = st.one_of(
    st.sampled_from(list("abcABCe ! .\n\t\r\x0b\x01#1\u00e9\u0301Жж中日😀\u2014\u00bf\u200b\u3000")),
    st.characters(blacklist_categories=("Cs",)),
)
texts = st.text(alphabet=_alphabet, max_size=300)


@pytest.fixture(scope="module")
def shipped() -> tuple[object, object]:
    emb = StaticEmbedder.shipped()
    from importlib import resources

    data = resources.files("routecore").joinpath("data")
    tokens = data.joinpath("minilm-static.vocab.txt").read_text("utf-8").split("\n")[:-1]
    with data.joinpath("minilm-static.f16.npy").open("rb") as f:
        vecs = np.load(f).astype(np.float32)
    assert len(tokens) == emb.n_tokens
    return _fast.EmbedTableC(tokens, vecs), _fast.EmbedTablePy(tokens, vecs)


def _agree(tc: object, tp: object, text: str, max_tokens: int) -> None:
    ic = _fast.embed_idsC(tc, text, max_tokens)
    ip = _fast.embed_idsPy(tp, text, max_tokens)
    assert ic.dtype == ip.dtype == np.int32
    assert ic.tolist() == ip.tolist()
    vc = _fast.embedC(tc, text, max_tokens)
    vp = _fast.embedPy(tp, text, max_tokens)
    assert vc.dtype == vp.dtype == np.float32
    np.testing.assert_allclose(vc, vp, atol=2e-6)


SMALL_C = _fast.EmbedTableC(SMALL, SMALL_VECS)
SMALL_PY = _fast.EmbedTablePy(SMALL, SMALL_VECS)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.integers(1, 40))
def test_small_vocabulary_agrees(text: str, max_tokens: int) -> None:
    """Token ids are equal and vectors equal within float32 rounding, C vs Python,
    on a small vocabulary with continuations and Unicode."""
    _agree(SMALL_C, SMALL_PY, text, max_tokens)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_shipped_vocabulary_agrees(shipped: tuple[object, object], text: str) -> None:
    """C and Python agree on the shipped vocabulary and vectors."""
    _agree(*shipped, text, 512)


def test_wordpiece_splits_like_bert() -> None:
    """Greedy longest-piece splits, "##" continuations, punctuation apart, accents
    stripped, unknown and over-long words dropped, in both twins."""
    for tc, ids_fn, embed_fn in ((SMALL_C, _fast.embed_idsC, _fast.embedC),
                                 (SMALL_PY, _fast.embed_idsPy, _fast.embedPy)):
        def toks(text: str, t: object = tc, f: object = ids_fn) -> list[str]:
            return [SMALL[i] for i in f(t, text, 100)]  # type: ignore[operator]
        assert toks("abc abcc ABB") == ["abc", "abc", "##c", "ab", "##b"]
        assert toks("Café! zz ab.") == ["cafe", "!", "ab", "."]
        assert toks("a\x01b a\tb") == ["ab", "a", "b"]
        assert toks("中中ЖЖЖ") == ["中", "中", "жж", "##ж"]
        assert toks("x" * 30 + " " + "a" * 101) == ["x" * 30]
        assert toks("a b c a b c") == ["a", "b", "c", "a", "b", "c"]
        assert [SMALL[i] for i in ids_fn(tc, "a b c a b c", 4)] == ["a", "b", "c", "a"]
        np.testing.assert_array_equal(embed_fn(tc, "zzz", 10), np.zeros(8, np.float32))


def test_bad_tables_are_refused() -> None:
    """Both twins refuse mismatched shapes, duplicate tokens and empty tokens."""
    for cls in (_fast.EmbedTableC, _fast.EmbedTablePy):
        with pytest.raises(ValueError):
            cls(["a", "b"], np.zeros((3, 4), np.float32))
        with pytest.raises(ValueError):
            cls(["a", "a"], np.zeros((2, 4), np.float32))
        with pytest.raises(ValueError):
            cls(["a", ""], np.zeros((2, 4), np.float32))
    for fn, t in ((_fast.embedC, SMALL_C), (_fast.embedPy, SMALL_PY)):
        with pytest.raises(ValueError):
            fn(t, "a", 0)
