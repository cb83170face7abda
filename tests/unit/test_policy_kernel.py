"""The policy kernel (`_fast.score_models`) against a plain reference of the policy rules.

The reference restates the policy in the obvious way (numpy matrix product,
`sorted`, one check after another); the kernel must give the same rejection
codes and ranking, and the same numbers within rounding. Runs on whichever
twin is active (the C core, or the pure-Python one under ROUTECORE_NO_EXTENSIONS=1).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from routecore import Router, _fast
from routecore._fast import _constants as K


def _reference(table: np.ndarray, probs: np.ndarray | None, codes: np.ndarray | None,
               boost: np.ndarray | None, overrides: np.ndarray | None, complexity: float,
               need: int, it: int, ot: int, max_cost: float, max_lat: float, min_q: float,
               strategy: int, wq: float, wc: float, wl: float,
               out_limit: int = -1) -> tuple:  # type: ignore[type-arg]
    m = table.shape[0]
    pi, po, p50, tps, ctx, mo, caps, dq, p95 = (table[:, j] for j in range(K.N_MODEL_COLS))
    room = ot if out_limit < 0 else out_limit
    quality = table[:, K.N_MODEL_COLS:]
    base = dq
    if probs is not None and quality.shape[1] and probs.sum() > 0:
        base = quality @ (probs / probs.sum())
    q = np.clip(1.0 - (1.0 - base) * (0.1 + 3.0 * complexity**2), 0.0, 1.0)
    cost = it * pi + ot * po
    lat = np.maximum(p50 + (ot - 512) / tps * 1000.0, 0.2 * p50) + it * 50.0 / tps
    lat95 = np.maximum(p95 + (ot - 512) / tps * 1000.0, 0.2 * p95) + it * 50.0 / tps
    if overrides is not None:
        q = np.where(np.isnan(overrides[0]), q, overrides[0])
        cost = np.where(np.isnan(overrides[1]), cost, overrides[1])
    fail = []
    for i in range(m):
        code = 0 if codes is None else int(codes[i])
        if code in (1, 2):
            pass
        elif need and (int(caps[i]) & need) != need:
            code = 3
        elif it + room > ctx[i]:
            code = 4
        elif room > mo[i]:
            code = 5
        elif code in (6, 10):
            pass
        elif not math.isnan(max_cost) and cost[i] > max_cost:
            code = 7
        elif not math.isnan(max_lat) and lat95[i] > max_lat:
            code = 8
        elif not math.isnan(min_q) and q[i] < min_q:
            code = 9
        fail.append(code)
    ok = [i for i in range(m) if fail[i] == 0]
    score = q.copy()
    target = math.nan
    if not ok:
        pass  # the policy raises NoModelAvailable; the kernel leaves score = quality
    elif strategy == K.SCORE_QUALITY:
        score = q - 1e-6 * cost / max(cost[ok].max(), 1e-12)
    elif strategy in (K.SCORE_COST, K.SCORE_LATENCY):
        target = min_q if not math.isnan(min_q) else q[ok].max() - K.QUALITY_TOLERANCE
        key = cost if strategy == K.SCORE_COST else lat
        score = np.where(q >= target - 1e-12, 2.0 - key / max(key[ok].max(), 1e-12), q)
    elif strategy in (K.SCORE_MULTI, K.SCORE_DOMAIN):
        lc, ll = np.log10(np.maximum(cost, 1e-12)), np.log10(np.maximum(lat, 1e-3))
        score = (wq * q - wc * K.DECADE_VALUE * (lc - lc[ok].min())
                 - wl * K.DECADE_VALUE * (ll - ll[ok].min()))
        if strategy == K.SCORE_DOMAIN and boost is not None:
            score = np.where(np.isnan(boost), score, boost)
    elif strategy == K.SCORE_COMPLEXITY and boost is not None:
        score = np.where(boost > q, boost, q)
    order = sorted(ok, key=lambda i: -score[i])
    return q, cost, lat, score, np.array(fail), np.array(order, dtype=np.int64), target


def _random_args(seed: int) -> tuple:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    m, nc = int(rng.integers(1, 20)), int(rng.integers(0, 10))
    table = np.empty((m, K.N_MODEL_COLS + nc))
    table[:, 0] = rng.uniform(0, 5e-6, m)
    table[:, 1] = rng.uniform(0, 6e-5, m)
    table[:, 2] = rng.uniform(100, 8000, m)
    table[:, 3] = rng.uniform(20, 400, m)
    table[:, 4] = rng.choice([8e3, 128e3, 1e6], m)
    table[:, 5] = rng.choice([4096.0, 16384.0, 65536.0], m)
    table[:, 6] = rng.integers(0, 16, m)
    table[:, 7] = rng.uniform(0.3, 1.0, m)
    table[:, 8] = table[:, 2] * rng.uniform(1.0, 4.0, m)  # p95
    table[:, 9:] = rng.uniform(0.3, 1.0, (m, nc))
    probs = rng.random(nc) if rng.random() < 0.8 else None
    codes = rng.choice([0, 0, 0, 1, 2, 6, 10], m).astype(np.int8) if rng.random() < 0.3 else None
    boost = np.where(rng.random(m) < 0.6, np.nan, rng.uniform(90, 100, m))
    overrides = (np.where(rng.random((2, m)) < 0.5, np.nan, rng.uniform(0, 1e-2, (2, m)))
                 if rng.random() < 0.2 else None)
    nan = math.nan
    return (table, probs, codes, boost, overrides, float(rng.random()),
            int(rng.integers(0, 16)) if rng.random() < 0.3 else 0,
            int(rng.integers(1, 50_000)), int(rng.choice([256, 1024, 20_000])),
            float(rng.uniform(0, 0.05)) if rng.random() < 0.4 else nan,
            float(rng.uniform(500, 9000)) if rng.random() < 0.4 else nan,
            float(rng.uniform(0.3, 1.0)) if rng.random() < 0.4 else nan,
            int(rng.integers(0, 7)), *map(float, rng.uniform(0, 2, 3)),
            int(rng.choice([-1, 300, 5000, 40_000])))


@pytest.mark.parametrize("seed", range(300))
def test_kernel_matches_reference(seed: int) -> None:
    """Codes and ranking equal the reference; estimates and scores match within rounding."""
    args = _random_args(seed)
    got = _fast.score_models(*args)
    want = _reference(*args)
    np.testing.assert_array_equal(got[4], want[4])
    for g, w in zip(got[:4], want[:4], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    # Ties in score (e.g. two boosted models) may only differ below rounding.
    if not np.array_equal(got[5], want[5]):
        np.testing.assert_allclose(got[3][got[5]], want[3][want[5]], rtol=1e-12, atol=1e-12)
    assert (math.isnan(got[6]) and math.isnan(want[6])) or abs(got[6] - want[6]) < 1e-12


def test_kernel_order_is_stable_on_ties() -> None:
    """Equal scores keep registry order; rejected models are not ranked."""
    table = np.zeros((5, K.N_MODEL_COLS))
    table[:, 3:6] = (100.0, 1e6, 1e6)
    table[:, 7] = [0.5, 0.9, 0.5, 0.9, 0.5]
    codes = np.array([0, 0, 0, 1, 0], dtype=np.int8)
    _, _, _, _, fail, order, _ = _fast.score_models(
        table, None, codes, None, None, 0.0, 0, 10, 10, math.nan, math.nan, math.nan,
        K.SCORE_NONE, 1.0, 1.0, 1.0)
    assert order.tolist() == [1, 0, 2, 4]
    assert fail.tolist() == [0, 0, 0, K.FAIL_DENIED, 0]


def test_policy_reasons_and_fallbacks_from_the_kernel(default_router: Router) -> None:
    """Each rejection code becomes today's reason text; fallbacks skip rejected models."""
    from routecore import Constraints

    d = default_router.route("Write a long story.", constraints=Constraints(
        max_output_tokens=70000, deny_models=frozenset({"gpt-5"})))
    reasons = {c.model: c.rejected_reason for c in d.candidates}
    assert reasons["gpt-5"] == "denied by deny_models"
    assert reasons["gpt-4o"] == "max output 70000 tokens > model limit 16384"
    assert all(not reasons[f] or reasons[f].startswith("pareto") for f in d.fallbacks)
    assert d.model not in d.fallbacks
    d = default_router.route("hi", strategy="cost", constraints=Constraints(
        max_latency_ms=1000, max_cost_usd=0.001, min_quality=0.9))
    reasons = {c.model: c.rejected_reason for c in d.candidates}
    assert reasons["deepseek-flash"].startswith("estimated p95 latency ")
    assert reasons["deepseek-flash"].endswith(" ms > max_latency_ms 1,000")
    assert reasons["gpt-5"].startswith("estimated cost $")
    assert reasons["gpt-5"].endswith(" > max_cost_usd $0.001000")
    assert d.reason.startswith("cost: cheapest model with predicted quality >= 0.900; ")
    proof = "Prove step by step, rigorously, that the algorithm is optimal; justify each lemma."
    d = default_router.route(proof, constraints=Constraints(min_quality=0.8))
    assert any(c.rejected_reason.startswith("predicted quality ")
               and c.rejected_reason.endswith(" < min_quality 0.800") for c in d.candidates)
