"""The classifier's combination step: the twin of classify.pyx.

Computes exactly what the C side computes; tests/parity proves it.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

_LOG_20, _LOG_4000 = math.log1p(20.0), math.log1p(4000.0)


def _min1(x: float) -> float:
    return x if x < 1.0 else 1.0  # min(1.0, x)


def _max0(x: float) -> float:
    return x if x > 0.0 else 0.0  # max(0.0, x)


def combine_categories(
    sims: npt.ArrayLike | None,
    w: float,
    hits: npt.ArrayLike,
    owners: npt.ArrayLike,
    hard_weight: npt.ArrayLike,
    regex: npt.ArrayLike | None,
    base: npt.ArrayLike,
    log_tokens: float,
    math_score: float,
    code_score: float,
    easy: bool,
) -> tuple[int, float, float, F64]:
    """The classifier's category distribution and complexity, in one call.

    sims: float32[c] embedding similarity per category (None: no embedding);
    w: the embedding's weight (rules weigh 1 - w, and count only when w < 1);
    when nothing weighs in (w = 0 and no rule evidence), sims still choose, at
    a soft temperature: a spread distribution with low confidence;
    hits: int32[t] phrase counts (phrase_hits over the phrase table); owners:
    float64[t, c] how many of a category's keywords each table slot holds;
    hard_weight: float64[t] how many hard-request markers each slot holds;
    regex: float64[c] matching patterns per category (None: none); base:
    float64[c] each category's base complexity; log_tokens, math_score,
    code_score: the feature scalars; easy: the prompt opens like small talk.

    Returns (best category, confidence, complexity, probs float64[c]). Every
    sum runs left to right, so the C twin gives bit-equal doubles.
    """
    bl = np.ascontiguousarray(base, dtype=np.float64)
    if bl.ndim != 1:
        raise ValueError("base must be one-dimensional")
    n = bl.shape[0]
    if n < 1:
        raise ValueError("base must have at least one category")
    h = np.ascontiguousarray(hits, dtype=np.int32)
    if h.ndim != 1:
        raise ValueError("hits must be one-dimensional")
    nt = h.shape[0]
    hw = np.ascontiguousarray(hard_weight, dtype=np.float64)
    if hw.ndim != 1 or hw.shape[0] != nt:
        raise ValueError("hard_weight must have one entry per hit")
    ow = np.ascontiguousarray(owners, dtype=np.float64)
    if ow.ndim != 2 or ow.shape != (nt, n):
        raise ValueError("owners must have shape (hits, categories)")
    sl: list[float] | None = None
    if sims is not None:
        sa = np.ascontiguousarray(sims, dtype=np.float32)
        if sa.ndim != 1 or sa.shape[0] != n:
            raise ValueError("sims must have one entry per category")
        sl = sa.astype(np.float64).tolist()
    rl: list[float] | None = None
    if regex is not None:
        ra = np.ascontiguousarray(regex, dtype=np.float64)
        if ra.ndim != 1 or ra.shape[0] != n:
            raise ValueError("regex must have one entry per category")
        rl = ra.tolist()
    owl: list[list[float]] = ow.tolist()
    hwl: list[float] = hw.tolist()

    ev = [0.0] * n
    hard = 0.0
    for t, k in enumerate(h.tolist()):
        if k > 0:
            hard += hwl[t]
            for c in range(n):
                ev[c] += owl[t][c]
    for c in range(n):
        if rl is not None:
            ev[c] += 1.5 * rl[c]
        ev[c] = 1.0 - math.exp(-0.7 * ev[c])
    comb = [0.0] * n
    if sl is not None:
        top = 0.0
        for c in range(n):
            x = sl[c]
            if x < 0.0:
                x = 0.0
            elif x > 1.0:
                x = 1.0
            comb[c] = x
            if c == 0 or x > top:
                top = x
        scale = w * _min1(0.5 + top) / top if top > 0 else 0.0
        comb = [x * scale for x in comb]
    if w < 1.0:
        comb = [comb[c] + (1.0 - w) * ev[c] for c in range(n)]
    total = 0.0
    for x in comb:
        total += x
    confident = total > 0.0
    soft = False
    if not confident and sl is not None:
        # No weighted evidence (rule mode, no keyword or pattern hit): the
        # similarities choose at a soft temperature, so the distribution stays
        # spread and the confidence low, instead of naming the first category.
        mx = 0.0
        for c in range(n):
            x = sl[c]
            if x < 0.0:
                x = 0.0
            elif x > 1.0:
                x = 1.0
            comb[c] = x
            if x > mx:
                mx = x
        soft = mx > 0.0
    if soft:
        z = [math.exp((x - mx) / 0.5) for x in comb]
        total = 0.0
        for x in z:
            total += x
        probs = [x / total for x in z]
    elif total <= 0.0:
        probs = [1.0 / n] * n
    else:
        mx = comb[0]
        for x in comb[1:]:
            if x > mx:
                mx = x
        z = [math.exp((x - mx) / 0.15) for x in comb]
        total = 0.0
        for x in z:
            total += x
        probs = [x / total for x in z]
    best = 0
    for c in range(1, n):
        if probs[c] > probs[best]:
            best = c
    conf = 0.0
    if confident or soft:
        second = 0.0
        if n > 1:
            second = -math.inf
            for c in range(n):
                if c != best and probs[c] > second:
                    second = probs[c]
        conf = _min1(0.5 * probs[best] + 0.5 * (probs[best] - second))
    mix = 0.0
    for c in range(n):
        mix += probs[c] * float(bl[c])
    length = _min1(_max0((log_tokens - _LOG_20) / (_LOG_4000 - _LOG_20)))
    cx = 0.45 * mix + 0.2 * length + 0.3 * _min1(hard / 3.0)
    cx += 0.05 * _min1(math_score)
    cx += 0.03 * _min1(code_score)
    if easy:
        cx *= 0.5
    return best, conf, _min1(_max0(cx)), np.array(probs, dtype=np.float64)
