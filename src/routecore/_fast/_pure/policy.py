"""The policy kernel (score_models): the twin of policy.pyx.

Computes exactly what the C side computes; tests/parity proves it.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .._constants import (
    COL_CAPS,
    COL_CONTEXT,
    COL_DEFAULT_Q,
    COL_MAX_OUTPUT,
    COL_P50,
    COL_P95,
    COL_PRICE_IN,
    COL_PRICE_OUT,
    COL_TPS,
    DECADE_VALUE,
    FAIL_AT_LIMIT,
    FAIL_CAPABILITY,
    FAIL_CONTEXT,
    FAIL_COST,
    FAIL_DENIED,
    FAIL_LATENCY,
    FAIL_MAX_OUTPUT,
    FAIL_NOT_ALLOWED,
    FAIL_OK,
    FAIL_QUALITY,
    FAIL_UNHEALTHY,
    N_MODEL_COLS,
    QUALITY_TOLERANCE,
    SCORE_COMPLEXITY,
    SCORE_COST,
    SCORE_DOMAIN,
    SCORE_LATENCY,
    SCORE_MULTI,
    SCORE_NONE,
    SCORE_QUALITY,
)

F64 = npt.NDArray[np.float64]

def score_models(
    table: npt.ArrayLike,
    probs: npt.ArrayLike | None,
    codes: npt.ArrayLike | None,
    boost: npt.ArrayLike | None,
    overrides: npt.ArrayLike | None,
    complexity: float,
    need: int,
    in_tokens: int,
    out_tokens: int,
    max_cost: float,
    max_latency: float,
    min_quality: float,
    strategy: int,
    wq: float,
    wc: float,
    wl: float,
    out_limit: int = -1,
) -> tuple[F64, F64, F64, F64, npt.NDArray[np.int8], npt.NDArray[np.int64], float]:
    """The policy's per-model numbers for one request, in one call.

    table: float64[m, N_MODEL_COLS + c], one row per model: price per input and
    output token, p50 latency (ms), decode tokens/s, context window, max output
    tokens, capability bits, default quality, p95 latency (ms), then the quality
    per category. The latency estimate is on p50; max_latency is checked on the
    same estimate made with p95.
    probs: float64[c] category probabilities (None: use the default quality;
    also when they do not sum to > 0). codes: int8[m] name checks from the
    caller (FAIL_DENIED, FAIL_NOT_ALLOWED, FAIL_UNHEALTHY, FAIL_AT_LIMIT or 0;
    None: all 0).
    boost: float64[m] per-model strategy boost, NaN for none (complexity: the
    score is max(quality, boost); domain: boost replaces the multi-objective
    score). overrides: float64[2, m] quality and cost replacing the estimates
    where not NaN (a learned router's predictions). max_cost, max_latency,
    min_quality: NaN for no limit. strategy: a SCORE_* code. out_limit: the
    output the model must have room for (context window, max output); -1: out_tokens
    (the expected output, which prices and times the answer).

    Returns (quality, cost_usd, latency_ms, score, fail, order, target): fail
    is the FAIL_* code of the first failing check (0 when eligible), order the
    eligible models by score descending (stable: ties keep registry order),
    target the quality bar of the cost / latency strategies (NaN otherwise).
    Every sum runs left to right, so the C twin gives bit-equal doubles.
    """
    t = np.ascontiguousarray(table, dtype=np.float64)
    if t.ndim != 2:
        raise ValueError("table must be two-dimensional")
    m, width = t.shape
    nc = width - N_MODEL_COLS
    if nc < 0:
        raise ValueError(f"table needs at least {N_MODEL_COLS} columns")
    if not SCORE_QUALITY <= strategy <= SCORE_NONE:
        raise ValueError(f"unknown strategy code {strategy}")
    rows: list[list[float]] = t.tolist()
    pl: list[float] | None = None
    if probs is not None:
        pa = np.ascontiguousarray(probs, dtype=np.float64)
        if pa.ndim != 1 or pa.shape[0] != nc:
            raise ValueError("probs must have one entry per quality column")
        pl = pa.tolist()
    cl = _per_model(codes, np.int8, "codes", m)
    bl = _per_model(boost, np.float64, "boost", m)
    vl: list[list[float]] | None = None
    if overrides is not None:
        ov = np.ascontiguousarray(overrides, dtype=np.float64)
        if ov.ndim != 2 or ov.shape != (2, m):
            raise ValueError("overrides must have shape (2, models)")
        vl = ov.tolist()

    it, ot = float(in_tokens), float(out_tokens)
    ol = float(out_limit if out_limit >= 0 else out_tokens)
    span = it + ol
    pn: list[float] | None = None
    if pl is not None and nc > 0:
        total = 0.0
        for x in pl:
            total += x
        if total > 0:
            pn = [x / total for x in pl]
    f = 0.1 + 3.0 * complexity * complexity
    q, cost, lat = [0.0] * m, [0.0] * m, [0.0] * m
    for i, row in enumerate(rows):
        if pn is not None:
            acc = 0.0
            for j in range(nc):
                acc += row[N_MODEL_COLS + j] * pn[j]
            x = acc
        else:
            x = row[COL_DEFAULT_Q]
        x = 1.0 - (1.0 - x) * f
        if not (0.0 <= x <= 1.0):
            x = 0.0 if x < 0.0 else 1.0
        q[i] = x
        cost[i] = it * row[COL_PRICE_IN] + ot * row[COL_PRICE_OUT]
        lat[i] = _lat(row[COL_P50], row[COL_TPS], ot, it)
        if vl is not None:
            if vl[0][i] == vl[0][i]:
                q[i] = vl[0][i]
            if vl[1][i] == vl[1][i]:
                cost[i] = vl[1][i]

    fail = [FAIL_OK] * m
    order: list[int] = []
    for i, row in enumerate(rows):
        code = FAIL_OK if cl is None else int(cl[i])
        if code in (FAIL_DENIED, FAIL_NOT_ALLOWED):
            pass
        elif need and (int(row[COL_CAPS]) & need) != need:
            code = FAIL_CAPABILITY
        elif span > row[COL_CONTEXT]:
            code = FAIL_CONTEXT
        elif ol > row[COL_MAX_OUTPUT]:
            code = FAIL_MAX_OUTPUT
        elif code in (FAIL_UNHEALTHY, FAIL_AT_LIMIT):
            pass
        elif cost[i] > max_cost:
            code = FAIL_COST
        elif max_latency == max_latency and _lat(row[COL_P95], row[COL_TPS], ot, it) > max_latency:
            code = FAIL_LATENCY
        elif q[i] < min_quality:
            code = FAIL_QUALITY
        else:
            code = FAIL_OK
        fail[i] = code
        if code == FAIL_OK:
            order.append(i)

    target = math.nan
    score = list(q)
    if not order:
        pass
    elif strategy == SCORE_QUALITY:
        top = _max_over(cost, order)
        if top < 1e-12:
            top = 1e-12
        score = [q[i] - 1e-6 * cost[i] / top for i in range(m)]
    elif strategy in (SCORE_COST, SCORE_LATENCY):
        target = min_quality if min_quality == min_quality else _max_over(q, order) - QUALITY_TOLERANCE
        key = cost if strategy == SCORE_COST else lat
        top = _max_over(key, order)
        if top < 1e-12:
            top = 1e-12
        score = [2.0 - key[i] / top if q[i] >= target - 1e-12 else q[i] for i in range(m)]
    elif strategy in (SCORE_MULTI, SCORE_DOMAIN):
        lc = [math.log10(c if c > 1e-12 else 1e-12) for c in cost]
        ll = [math.log10(t if t > 1e-3 else 1e-3) for t in lat]
        cmin = _min_over(lc, order)
        lmin = _min_over(ll, order)
        wc = wc * DECADE_VALUE
        wl = wl * DECADE_VALUE
        score = [wq * q[i] - wc * (lc[i] - cmin) - wl * (ll[i] - lmin) for i in range(m)]
        if strategy == SCORE_DOMAIN and bl is not None:
            for i in range(m):
                if bl[i] == bl[i]:
                    score[i] = bl[i]
    elif strategy == SCORE_COMPLEXITY and bl is not None:
        for i in range(m):
            if bl[i] > score[i]:
                score[i] = bl[i]

    # Stable insertion sort by score, descending (the C twin's exact order).
    for j in range(1, len(order)):
        k = order[j]
        v = score[k]
        a = j
        while a > 0 and score[order[a - 1]] < v:
            order[a] = order[a - 1]
            a -= 1
        order[a] = k
    return (np.array(q, dtype=np.float64), np.array(cost, dtype=np.float64),
            np.array(lat, dtype=np.float64), np.array(score, dtype=np.float64),
            np.array(fail, dtype=np.int8), np.array(order, dtype=np.int64), target)


def _lat(p: float, tps: float, ot: float, it: float) -> float:
    """Latency (ms) from a typical ~512-token answer's `p`: scaled by the output length,
    plus prefill at ~20x the decode rate."""
    tt = p + (ot - 512.0) / tps * 1000.0
    floor = 0.2 * p
    return (tt if tt > floor else floor) + it * 50.0 / tps


def _per_model(a: npt.ArrayLike | None, dtype: npt.DTypeLike, name: str, m: int) -> list[float] | None:
    if a is None:
        return None
    arr: npt.NDArray[np.generic] = np.ascontiguousarray(a, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if arr.shape[0] != m:
        raise ValueError(f"{name} must have one entry per model")
    out: list[float] = arr.tolist()
    return out


def _max_over(x: list[float], idx: list[int]) -> float:
    top = x[idx[0]]
    for i in idx[1:]:
        if x[i] > top:
            top = x[i]
    return top


def _min_over(x: list[float], idx: list[int]) -> float:
    low = x[idx[0]]
    for i in idx[1:]:
        if x[i] < low:
            low = x[i]
    return low


def pareto_dominators(q: npt.ArrayLike, cost: npt.ArrayLike, lat: npt.ArrayLike,
                      eligible: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """For each eligible model, the first eligible model (by index) that is at least as
    good on quality, cost and latency and strictly better on one; -1 when none dominates
    it or it is not eligible."""
    qs = np.ascontiguousarray(q, dtype=np.float64)
    m = len(qs)
    cs, ls = (np.ascontiguousarray(x, dtype=np.float64) for x in (cost, lat))
    el = np.ascontiguousarray(eligible, dtype=np.uint8)
    if qs.ndim != 1 or cs.shape != (m,) or ls.shape != (m,) or el.shape != (m,):
        raise ValueError("q, cost, lat and eligible must be one-dimensional, one entry per model")
    pts = [(i, float(qs[i]), float(cs[i]), float(ls[i])) for i in range(m) if el[i]]
    out = np.full(m, -1, dtype=np.int64)
    for b, qb, cb, lb in pts:
        for a, qa, ca, la in pts:
            if qa >= qb and ca <= cb and la <= lb and (qa > qb or ca < cb or la < lb):
                out[b] = a
                break
    return out
