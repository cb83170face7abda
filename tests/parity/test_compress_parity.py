"""C vs pure-Python parity of the compression kernels (skipped when the core is not built)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routecore import _fast
from routecore.routing.embedding import StaticEmbedder

if not _fast.HAVE_EXTENSIONS:
    pytest.skip("routecore._fast._core is not built", allow_module_level=True)

# Characters that drive the splitter: sentence ends, closers, whitespace of every kind,
# backticks for fences, lower and upper case after a full stop, CJK ends, astral.
_alphabet = st.one_of(
    st.sampled_from(list("ab Z.!?)\"'\u201d\u2019\n\n\t\r\x0b\x0c`` `\u3002\uff01\uff1f中é😀")),
    st.characters(blacklist_categories=("Cs",)),
)
texts = st.text(alphabet=_alphabet, max_size=400)
SLOW = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SMALL = ["a", "b", "ab", "##b", "z", ".", "!", "?", "`", "中", "e", "##a"]
_rng = np.random.default_rng(11)
SMALL_VECS = _rng.normal(size=(len(SMALL), 6)).astype(np.float32)
SMALL_C = _fast.EmbedTableC(SMALL, SMALL_VECS)
SMALL_PY = _fast.EmbedTablePy(SMALL, SMALL_VECS)


@SLOW
@given(texts, st.integers(1, 60))
def test_split_agrees_and_covers_the_text(text: str, max_chars: int) -> None:
    """Both splitters give the same chunks; they tile the text in order, prose chunks are at
    most max_chars long (trailing whitespace aside), and every code chunk starts with its
    fence line."""
    c = _fast.split_chunksC(text, max_chars)
    p = _fast.split_chunksPy(text, max_chars)
    assert c.dtype == p.dtype == np.int64 and c.tolist() == p.tolist()
    pos = 0
    for a, b, kind in c.tolist():
        assert a == pos and b > a
        pos = b
        if kind == 0:  # trailing whitespace rides along with the chunk it follows
            assert len(text[a:b].rstrip(" \t\n\r\x0b\x0c")) <= max_chars
        else:
            assert kind == 1 and text[a:b].lstrip(" \t").startswith("```")
    assert pos == len(text)


@SLOW
@given(st.lists(st.sampled_from(["Alpha beta. ", "Gamma? ", "e.g. delta ", "\n", "\n\n",
                                 "```py\nx = 1\n```\n", "  ```\n", "word " * 30, "中文。"]),
                max_size=40), st.integers(8, 200))
def test_split_agrees_on_structured_text(parts: list[str], max_chars: int) -> None:
    """Paragraphs, fences (closed and not) and abbreviations split alike in both twins."""
    text = "".join(parts)
    assert _fast.split_chunksC(text, max_chars).tolist() == \
        _fast.split_chunksPy(text, max_chars).tolist()


@SLOW
@given(texts, st.integers(1, 30))
def test_chunk_stats_agree(text: str, max_tokens: int) -> None:
    """Token estimates are equal and cosines agree within float32 rounding."""
    spans = _fast.split_chunksC(text, 40)
    q = _rng.normal(size=6).astype(np.float32)
    sc, tc = _fast.chunk_statsC(SMALL_C, text, spans, q, max_tokens)
    sp, tp = _fast.chunk_statsPy(SMALL_PY, text, spans, q, max_tokens)
    assert tc.tolist() == tp.tolist()
    np.testing.assert_allclose(sc, sp, atol=1e-5)


def test_chunk_stats_agree_on_the_shipped_embedding() -> None:
    """On real prose with the shipped vectors, both twins score every chunk alike."""
    emb = StaticEmbedder.shipped()
    from importlib import resources

    data = resources.files("routecore").joinpath("data")
    tokens = data.joinpath("minilm-static.vocab.txt").read_text("utf-8").split("\n")[:-1]
    table_py = _fast.EmbedTablePy(tokens, emb.table.vectors)
    text = ("The committee met on Tuesday. It approved the budget for the new library!\n\n"
            "Was the bridge finished? Nobody knew.\n```sql\nSELECT 1;\n```\nCafé naïve 中文。") * 20
    spans = _fast.split_chunksC(text, 100)
    q = emb.embed("When will the library budget be approved?")
    sc, tc = _fast.chunk_statsC(emb.table, text, spans, q, 512)
    sp, tp = _fast.chunk_statsPy(table_py, text, spans, q, 512)
    assert tc.tolist() == tp.tolist()
    np.testing.assert_allclose(sc, sp, atol=1e-5)
    assert (sc[spans[:, 2] == 1] == 0).all() and sc.max() > 0.3


@SLOW
@given(st.lists(st.tuples(st.floats(-1, 1, width=32), st.integers(0, 50), st.booleans()),
                max_size=60), st.integers(-10, 800))
def test_select_agrees_and_fits(rows: list[tuple[float, int, bool]], budget: int) -> None:
    """Both twins keep the same chunks: every protected one, and unprotected ones whose
    tokens fit what the protected ones left of the budget; no unkept chunk would still fit."""
    scores = np.array([r[0] for r in rows], dtype=np.float32)
    tokens = np.array([r[1] for r in rows], dtype=np.int64)
    prot = np.array([r[2] for r in rows], dtype=np.uint8)
    kc = _fast.select_chunksC(scores, tokens, prot, budget)
    kp = _fast.select_chunksPy(scores, tokens, prot, budget)
    assert kc.dtype == kp.dtype == np.uint8 and kc.tolist() == kp.tolist()
    keep = kc.astype(bool)
    assert keep[prot.astype(bool)].all()
    left = budget - int(tokens[prot.astype(bool)].sum())
    used = int(tokens[keep & ~prot.astype(bool)].sum())
    assert used <= max(left, 0)
    assert not any(t <= left - used for t in tokens[~keep].tolist())


def test_select_prefers_higher_scores_and_earlier_ties() -> None:
    """With room for two, the two best scores are kept; on a tie the earlier chunk wins."""
    for select in (_fast.select_chunksC, _fast.select_chunksPy):
        keep = select(np.array([0.1, 0.9, 0.5, 0.9], np.float32), np.array([5, 5, 5, 5]),
                      np.zeros(4, np.uint8), 10)
        assert keep.tolist() == [0, 1, 0, 1]
        keep = select(np.array([0.5, 0.5, 0.5], np.float32), np.array([5, 5, 5]),
                      np.zeros(3, np.uint8), 10)
        assert keep.tolist() == [1, 1, 0]


@pytest.mark.parametrize("fn", ["C", "Py"])
def test_bad_arguments_are_refused(fn: str) -> None:
    """Bad sizes, shapes and spans are ValueError in both twins."""
    split = getattr(_fast, f"split_chunks{fn}")
    stats = getattr(_fast, f"chunk_stats{fn}")
    select = getattr(_fast, f"select_chunks{fn}")
    table = SMALL_C if fn == "C" else SMALL_PY
    q = np.zeros(6, np.float32)
    with pytest.raises(ValueError, match="max_chars"):
        split("abc", 0)
    with pytest.raises(ValueError, match="spans must lie within"):
        stats(table, "abc", np.array([[0, 9, 0]]), q, 5)
    with pytest.raises(ValueError, match="spans must have shape"):
        stats(table, "abc", np.array([0, 3, 0]), q, 5)
    with pytest.raises(ValueError, match="query"):
        stats(table, "abc", np.array([[0, 3, 0]]), np.zeros(5, np.float32), 5)
    with pytest.raises(ValueError, match="max_tokens"):
        stats(table, "abc", np.array([[0, 3, 0]]), q, 0)
    with pytest.raises(ValueError, match="one length"):
        select(np.zeros(3), np.zeros(2), np.zeros(3), 5)
