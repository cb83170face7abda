"""C vs pure-Python parity for the compiled core (skipped when it is not built)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routecore import _fast

if not _fast.HAVE_EXTENSIONS:
    pytest.skip("routecore._fast._core is not built", allow_module_level=True)

FIXED = [
    "",
    " ",
    "a",
    "Hello world, this is a test.",
    "Write a Python function:\n```python\ndef foo(x):\n    return x + 1\n```\nWhat is 2+2?",
    "中文abc日本語のテキスト。Привет, мир! مرحبا بالعالم नमस्ते दुनिया",
    "😀👍🏽 e\u0301 İstanbul ΣΑΣ ß ǅ \u00a0\u2028\r\n\t\t  x",
    "getElementById snake_case_name 1234567 3.14159 $\\frac{a}{b}$",
    "Solve: x^2 - 5x + 6 = 0. Explain each step! Why does it work?",
    "\x00\x01\ufffd\U0010ffff\U00020000",
]

# Text mixing every class the walkers branch on: ASCII, Latin-1, CJK, emoji,
# combining marks, spaces, newlines, digits of other scripts, surrogates aside.
_alphabet = st.one_of(
    st.sampled_from(list("aZ_ 0\n\t.?!{};:`$\\+=éßİΣΑπЖжא٣中日テ한😀\u0301\u093f\u3002\uff1f")),
    st.characters(blacklist_categories=("Cs",)),
)
texts = st.text(alphabet=_alphabet, max_size=300)


@pytest.mark.parametrize("text", FIXED)
def test_fixed_cases_agree(text: str) -> None:
    """C and Python give equal token counts and features on hand-picked edge cases."""
    assert _fast.count_tokensC(text) == _fast.count_tokensPy(text)
    v1, s1, t1 = _fast.extractC(text, 256)
    v2, s2, t2 = _fast.extractPy(text, 256)
    assert t1 == t2 == _fast.count_tokensC(text)
    np.testing.assert_allclose(v1, v2, atol=1e-5)
    np.testing.assert_allclose(s1, s2, atol=1e-5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_token_counts_agree(text: str) -> None:
    """C and Python token estimates are equal on arbitrary Unicode text."""
    assert _fast.count_tokensC(text) == _fast.count_tokensPy(text)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.sampled_from([16, 64, 1024]))
def test_features_agree(text: str, dim: int) -> None:
    """C and Python features match within 1e-5 on arbitrary Unicode text, and both
    return the same token estimate as count_tokens."""
    v1, s1, t1 = _fast.extractC(text, dim)
    v2, s2, t2 = _fast.extractPy(text, dim)
    assert t1 == t2 == _fast.count_tokensC(text)
    assert v1.dtype == v2.dtype == np.float32
    np.testing.assert_allclose(v1, v2, atol=1e-5)
    np.testing.assert_allclose(s1, s2, atol=1e-5)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=5))
def test_chat_tokens_agree(contents: list[str]) -> None:
    """C and Python chat accounting agree and equal 3 + sum(3 + role + content)."""
    roles = ["user"] * len(contents)
    c = _fast.count_chat_tokensC(roles, contents)
    assert c == _fast.count_chat_tokensPy(roles, contents)
    assert c == 3 + sum(
        3 + _fast.count_tokensC(r) + _fast.count_tokensC(t)
        for r, t in zip(roles, contents, strict=True)
    )


def test_feature_vectors_are_unit_or_zero() -> None:
    """Vectors are L2-normalised, and the empty text gives the zero vector."""
    v, _, _ = _fast.extractC("some text here", 128)
    assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    z, _, _ = _fast.extractC("", 128)
    assert not z.any()


def _oracle(scores: np.ndarray, k: int) -> np.ndarray:
    key = np.where(np.isnan(scores), -np.inf, scores.astype(np.float64))
    return np.array(sorted(range(len(scores)), key=lambda i: (-key[i], i))[:k], dtype=np.int64)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from([0.0, 0.5, -0.5, 1.0, float("nan"), float("-inf")])
        | st.floats(-1, 1, width=32),
        max_size=200,
    ),
    st.integers(0, 220),
)
def test_top_k_matches_oracle(values: list[float], k: int) -> None:
    """top_k (C and Python) returns the brute-force order: score desc, lower id on ties."""
    scores = np.array(values, dtype=np.float32)
    want = _oracle(scores, k)
    for fn in (_fast.top_kC, _fast.top_kPy):
        ids, vals = fn(scores, k)
        assert ids.dtype == np.int64 and vals.dtype == np.float32
        np.testing.assert_array_equal(ids, want)
        np.testing.assert_array_equal(vals, scores[want])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 50), st.integers(1, 70), st.integers(0, 2**31 - 1))
def test_dense_dot_and_max_by_label_agree(n: int, d: int, seed: int) -> None:
    """Dense dot products agree within 1e-5 and per-label maxima exactly, C vs Python."""
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal(d).astype(np.float32)
    np.testing.assert_allclose(
        _fast.features_dense_dotC(m, q), _fast.features_dense_dotPy(m, q), atol=1e-4, rtol=1e-5
    )
    labels = rng.integers(0, 5, n).astype(np.int32)
    ids = rng.integers(-1, max(n, 1), 10).astype(np.int64)
    sims = rng.uniform(-1, 1, 10).astype(np.float32)
    np.testing.assert_array_equal(
        _fast.max_by_labelC(ids, sims, labels, 6), _fast.max_by_labelPy(ids, sims, labels, 6)
    )


# ------------------------------------------------------------------ phrases

_word_text = st.text(alphabet=_alphabet, max_size=200)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_word_text, st.data())
def test_phrase_hits_agree(text: str, data: st.DataObject) -> None:
    """C and Python phrase hashes and hit counts are equal; phrases from the text hit."""
    words = re.findall(r"\w+", text)
    picked: list[str] = []
    for _ in range(data.draw(st.integers(0, 8))):
        if words:
            i = data.draw(st.integers(0, len(words) - 1))
            m = data.draw(st.integers(1, _fast.PHRASE_MAX_WORDS))
            picked.append(" ".join(words[i : i + m]))
    picked += data.draw(st.lists(_word_text, max_size=3))
    hashes = []
    for p in picked:
        try:
            h = _fast.phrase_hashPy(p)
        except ValueError:
            with pytest.raises(ValueError):
                _fast.phrase_hashC(p)
            continue
        assert _fast.phrase_hashC(p) == h
        hashes.append(h)
    table = np.sort(np.array(hashes, dtype=np.uint64))
    n_max = data.draw(st.integers(1, _fast.PHRASE_MAX_WORDS))
    c = _fast.phrase_hitsC(text, table, n_max)
    assert c.dtype == np.int32 and c.shape == table.shape
    np.testing.assert_array_equal(c, _fast.phrase_hitsPy(text, table, n_max))


@pytest.mark.parametrize("text", FIXED)
def test_phrase_hits_fixed(text: str) -> None:
    """Every run of up to 4 words of the text is found, by C and Python alike."""
    words = _fast._pure.word_hashes(text)
    table = set()
    for i in range(len(words)):
        h = words[i]
        table.add(h)
        for j in range(i + 1, min(i + 4, len(words))):
            h = ((h * _fast._constants.PHRASE_MULT) & 0xFFFFFFFFFFFFFFFF) ^ words[j]
            table.add(h)
    t = np.array(sorted(table), dtype=np.uint64)
    c = _fast.phrase_hitsC(text, t, 4)
    np.testing.assert_array_equal(c, _fast.phrase_hitsPy(text, t, 4))
    assert (c >= 1).all()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from([0.0, 0.5, -0.5, -1.0, -1.5, 1.0, float("nan"), float("-inf")])
        | st.floats(-1, 1, width=32),
        max_size=120,
    ),
    st.integers(0, 130),
    st.integers(0, 2**31 - 1),
)
def test_top_k_max_by_label_agrees(values: list[float], k: int, seed: int) -> None:
    """The fused top-k + per-label max equals max_by_label(top_k(...)), C and Python."""
    scores = np.array(values, dtype=np.float32)
    labels = np.random.default_rng(seed).integers(0, 7, len(values)).astype(np.int32)
    want = _fast.max_by_labelPy(*_fast.top_kPy(scores, k), labels, 6)
    for fn in (_fast.top_k_max_by_labelC, _fast.top_k_max_by_labelPy):
        got = fn(scores, labels, 6, k)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ policy kernel

_finite = st.floats(0, 1e4, allow_nan=False)
_limit = st.one_of(st.just(float("nan")), st.floats(0, 2e4, allow_nan=False))


@st.composite
def _policy_args(draw: st.DrawFn) -> tuple:  # type: ignore[type-arg]
    m = draw(st.integers(1, 24))
    nc = draw(st.integers(0, 10))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    table = np.empty((m, _fast._constants.N_MODEL_COLS + nc))
    table[:, 0] = rng.choice([0.0, 1e-7, 1e-6, 5e-6], m) * rng.uniform(0.5, 2, m)
    table[:, 1] = rng.choice([0.0, 1e-6, 1e-5, 6e-5], m) * rng.uniform(0.5, 2, m)
    table[:, 2] = rng.choice([0.0, 200.0, 1500.0, 8000.0], m)
    table[:, 3] = rng.uniform(20, 400, m)
    table[:, 4] = rng.choice([8e3, 128e3, 1e6], m)
    table[:, 5] = rng.choice([4096.0, 16384.0, 65536.0], m)
    table[:, 6] = rng.integers(0, 16, m)
    table[:, 7] = rng.uniform(-0.2, 1.2, m)
    table[:, 8] = rng.choice([0.0, 300.0, 2500.0, 20000.0], m)  # p95
    table[:, 9:] = rng.uniform(-0.2, 1.2, (m, nc))
    probs = None if draw(st.booleans()) else rng.choice([0.0, 0.3, 1.0, 1e-300], nc) * rng.random(nc)
    codes = None if draw(st.booleans()) else rng.choice([0, 0, 1, 2, 6, 10], m).astype(np.int8)
    boost = None
    if draw(st.booleans()):
        boost = np.where(rng.random(m) < 0.5, np.nan, rng.uniform(0, 100, m))
    overrides = None
    if draw(st.booleans()):
        overrides = np.where(rng.random((2, m)) < 0.5, np.nan, rng.uniform(0, 0.01, (2, m)))
    scalars = (
        draw(st.sampled_from([0.0, 1.0]) | st.floats(0, 1)),  # complexity
        draw(st.integers(0, 15)),  # need
        draw(st.integers(0, 200_000)), draw(st.integers(0, 100_000)),  # tokens
        draw(st.one_of(st.just(float("nan")), st.floats(0, 0.05))),  # max cost
        draw(_limit),  # max latency
        draw(st.one_of(st.just(float("nan")), st.floats(0, 1))),  # min quality
        draw(st.integers(0, 6)),  # strategy
        draw(_finite), draw(_finite), draw(_finite),  # weights
        draw(st.sampled_from([-1, 0, 300, 50_000])),  # out_limit
    )
    return (table, probs, codes, boost, overrides, *scalars)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_policy_args())
def test_score_models_agree(args: tuple) -> None:  # type: ignore[type-arg]
    """The policy kernel gives bit-equal estimates, codes, scores and order, C vs Python."""
    got_c = _fast.score_modelsC(*args)
    got_py = _fast.score_modelsPy(*args)
    for a, b, dtype in zip(got_c[:6], got_py[:6], (np.float64,) * 4 + (np.int8, np.int64),
                           strict=True):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(a, b)
    assert got_c[6] == got_py[6] or (np.isnan(got_c[6]) and np.isnan(got_py[6]))


def test_score_models_rejects_bad_shapes() -> None:
    """Both twins refuse mis-shaped inputs with ValueError."""
    table = np.zeros((3, _fast._constants.N_MODEL_COLS + 2))
    table[:, 3:6] = (1.0, 1e6, 1e6)  # tokens/s, context, max output
    ok = (table, np.ones(2), None, None, None, 0.5, 0, 10, 10, np.nan, np.nan, np.nan, 5, 1.0, 1.0, 1.0)
    for fn in (_fast.score_modelsC, _fast.score_modelsPy):
        assert len(fn(*ok)[5]) == 3
        for i, bad in ((0, np.zeros((3, 4))), (1, np.ones(3)), (2, np.zeros(2, np.int8)),
                       (3, np.zeros(4)), (4, np.zeros((2, 2))), (12, 9)):
            args = list(ok)
            args[i] = bad
            with pytest.raises(ValueError):
                fn(*args)


_axis = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0])  # few values: ties and dominance both common


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 12).flatmap(lambda m: st.tuples(
    *(st.lists(_axis, min_size=m, max_size=m) for _ in range(3)),
    st.lists(st.booleans(), min_size=m, max_size=m))))
def test_pareto_dominators_agree(cols: tuple) -> None:  # type: ignore[type-arg]
    """C and Python name the same first dominator per model, and it really dominates."""
    q, cost, lat, ok = cols
    got = _fast.pareto_dominatorsC(q, cost, lat, ok)
    np.testing.assert_array_equal(got, _fast.pareto_dominatorsPy(q, cost, lat, ok))
    assert got.dtype == np.int64
    for b, a in enumerate(got.tolist()):
        better = [x for x in range(len(q)) if ok[x] and ok[b] and q[x] >= q[b]
                  and cost[x] <= cost[b] and lat[x] <= lat[b]
                  and (q[x], cost[x], lat[x]) != (q[b], cost[b], lat[b])]
        assert a == (better[0] if better else -1)


def test_pareto_dominators_reject_bad_shapes() -> None:
    """Both twins refuse columns of different lengths with ValueError."""
    for fn in (_fast.pareto_dominatorsC, _fast.pareto_dominatorsPy):
        with pytest.raises(ValueError):
            fn([1.0, 2.0], [1.0], [1.0, 2.0], [True, True])


# ------------------------------------------------------------------ classifier combination


@st.composite
def _combine_args(draw: st.DrawFn) -> tuple:  # type: ignore[type-arg]
    n = draw(st.integers(1, 12))
    nt = draw(st.integers(0, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    sims = None
    if draw(st.booleans()):
        sims = rng.choice([-1.0, 0.0, 0.2, 0.7, 1.0, 1.3], n).astype(np.float32)
        sims *= rng.uniform(0.5, 1.0, n).astype(np.float32)
    w = draw(st.sampled_from([0.0, 0.6, 1.0]) | st.floats(0, 1))
    hits = rng.choice([0, 0, 0, 1, 3], nt).astype(np.int32)
    owners = rng.choice([0.0, 0.0, 1.0, 2.0], (nt, n))
    hard = rng.choice([0.0, 0.0, 1.0, 2.0], nt)
    regex = None if draw(st.booleans()) else rng.choice([0.0, 0.0, 1.0, 2.0], n)
    base = rng.uniform(0, 1, n)
    scalars = (draw(st.floats(0, 15)), draw(st.floats(0, 3)), draw(st.floats(0, 3)),
               draw(st.booleans()))
    return (sims, w, hits, owners, hard, regex, base, *scalars)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_combine_args())
def test_combine_categories_agree(args: tuple) -> None:  # type: ignore[type-arg]
    """The classifier's combination step is bit-equal, C vs Python."""
    bc, cc, xc, pc = _fast.combine_categoriesC(*args)
    bp, cp, xp, pp = _fast.combine_categoriesPy(*args)
    assert (bc, cc, xc) == (bp, cp, xp)
    assert pc.dtype == pp.dtype == np.float64
    np.testing.assert_array_equal(pc, pp)
    assert 0.0 <= xc <= 1.0 and 0.0 <= cc <= 1.0
    assert abs(float(pc.sum()) - 1.0) < 1e-9


def test_combine_categories_rejects_bad_shapes() -> None:
    """Both twins refuse mis-shaped inputs with ValueError."""
    ok = (np.zeros(3, np.float32), 0.5, np.zeros(2, np.int32), np.zeros((2, 3)), np.zeros(2),
          None, np.zeros(3), 1.0, 0.0, 0.0, False)
    for fn in (_fast.combine_categoriesC, _fast.combine_categoriesPy):
        assert fn(*ok)[0] == 0
        for i, bad in ((0, np.zeros(2, np.float32)), (3, np.zeros((3, 3))), (4, np.zeros(3)),
                       (5, np.zeros(2)), (6, np.zeros(0))):
            args = list(ok)
            args[i] = bad
            with pytest.raises(ValueError):
                fn(*args)


def test_combine_categories_no_evidence_falls_back_to_sims() -> None:
    """With no weighted evidence (w = 0, no hits), both twins let the similarities
    choose at a soft temperature: spread, low confidence, not the first category."""
    sims = np.array([0.1, 0.2, 0.6, 0.3], np.float32)
    args = (sims, 0.0, np.zeros(2, np.int32), np.ones((2, 4)), np.zeros(2), None,
            np.full(4, 0.5), 1.0, 0.0, 0.0, False)
    for fn in (_fast.combine_categoriesC, _fast.combine_categoriesPy):
        best, conf, _, probs = fn(*args)
        assert best == 2
        assert 0.0 < conf < 0.4 and probs.max() < 0.5
        # Without similarities there is nothing to choose by: uniform, no confidence.
        best, conf, _, probs = fn(None, *args[1:])
        assert conf == 0.0 and np.allclose(probs, 0.25)
