"""The routing data README's metrics, exactly.

A router's knob is swept over settings; each setting routes every test prompt to
one model and yields a point (mean cost, mean score) read from the records.
Over those points: `quality_max`, `cost_ratio_at_best` against the best single
model *of the training file* measured on the test file, and `aiq`: the area
under the curve made non-decreasing, then its upper convex hull, linearly
interpolated over [cheapest model's test mean cost, priciest model's test mean
cost] and divided by that range; below the hull's first point quality counts 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class CurvePoint:
    setting: float
    cost: float
    quality: float


def curve_point(setting: float, choices: IntArray, scores: FloatArray,
                costs: FloatArray) -> CurvePoint:
    """(mean cost, mean score) of routing prompt i to model `choices[i]`."""
    rows = np.arange(len(choices))
    return CurvePoint(float(setting), float(costs[rows, choices].mean()),
                      float(scores[rows, choices].mean()))


def upper_hull(costs: Sequence[float], qualities: Sequence[float]) -> list[tuple[float, float]]:
    """Non-decreasing envelope of the points, then its upper convex hull (sorted by cost)."""
    pts = sorted(zip(costs, qualities, strict=True))
    mono: list[tuple[float, float]] = []
    best = -np.inf
    for c, q in pts:
        best = max(best, q)
        if mono and mono[-1][0] == c:
            mono[-1] = (c, best)
        else:
            mono.append((c, best))
    hull: list[tuple[float, float]] = []
    for p in mono:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # drop the middle point when it lies on or below the chord hull[-2] -> p
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def aiq(costs: Sequence[float], qualities: Sequence[float], lo: float, hi: float) -> float:
    """Area under the non-decreasing upper hull over [lo, hi], divided by hi - lo."""
    if not costs:
        return 0.0
    hull = upper_hull(costs, qualities)
    if hi <= lo:
        # Degenerate range: quality at that cost (0 if the curve starts above it).
        xs0 = np.array([p[0] for p in hull])
        ys0 = np.array([p[1] for p in hull])
        return float(np.interp(lo, xs0, ys0)) if lo >= xs0[0] else 0.0
    xs = np.array([p[0] for p in hull])
    ys = np.array([p[1] for p in hull])
    # f is 0 below xs[0], the hull inside, flat at ys[-1] beyond xs[-1].
    start = max(lo, float(xs[0]))
    if start >= hi:
        return 0.0
    grid = np.unique(np.concatenate([[start, hi], xs[(xs > start) & (xs < hi)]]))
    vals = np.interp(grid, xs, ys)
    area = float(np.sum((grid[1:] - grid[:-1]) * (vals[1:] + vals[:-1]) / 2.0))
    return area / (hi - lo)


def best_single(train_scores: FloatArray) -> int:
    """Index of the model with the highest mean training score."""
    return int(np.argmax(np.nanmean(train_scores, axis=0)))


def oracle(scores: FloatArray, costs: FloatArray) -> tuple[float, float]:
    """Per-prompt best score via the cheapest model reaching it: (quality, cost)."""
    best = scores.max(axis=1, keepdims=True)
    masked = np.where(scores >= best, costs, np.inf)
    pick = np.argmin(masked, axis=1)
    rows = np.arange(len(scores))
    return float(scores[rows, pick].mean()), float(costs[rows, pick].mean())


def cost_ratio_at_best(points: Sequence[CurvePoint], target_quality: float,
                       target_cost: float) -> float | None:
    """Lowest cost among points with quality >= target, over the target's cost (None if none)."""
    ok = [p.cost for p in points if p.quality >= target_quality - 1e-12]
    if not ok or target_cost <= 0:
        return None
    return min(ok) / target_cost


def score_curve(points: Sequence[CurvePoint], test_scores: FloatArray, test_costs: FloatArray,
                train_scores: FloatArray, models: Sequence[str]) -> dict[str, Any]:
    """Every README metric for one curve, plus the baselines."""
    model_q = test_scores.mean(axis=0)
    model_c = test_costs.mean(axis=0)
    lo, hi = float(model_c.min()), float(model_c.max())
    b = best_single(train_scores)
    oq, oc = oracle(test_scores, test_costs)
    cs = [p.cost for p in points]
    qs = [p.quality for p in points]
    return {
        "quality_max": max(qs) if qs else 0.0,
        "cost_ratio_at_best": cost_ratio_at_best(points, float(model_q[b]), float(model_c[b])),
        "aiq": aiq(cs, qs, lo, hi),
        "cost_range": [lo, hi],
        "curve": [{"setting": p.setting, "cost": p.cost, "quality": p.quality} for p in points],
        "baselines": {
            "random": {"quality": float(model_q.mean()), "cost": float(model_c.mean()),
                       "aiq": aiq([float(model_c.mean())], [float(model_q.mean())], lo, hi)},
            "best_single": {"model": models[b], "quality": float(model_q[b]),
                            "cost": float(model_c[b])},
            "oracle": {"quality": oq, "cost": oc},
            "models": {m: {"quality": float(model_q[j]), "cost": float(model_c[j])}
                       for j, m in enumerate(models)},
        },
    }
