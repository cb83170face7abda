"""Unit tests of the README metrics in routecore.learned.scoring."""

from __future__ import annotations

import numpy as np
import pytest

from routecore.learned.scoring import (
    CurvePoint,
    aiq,
    cost_ratio_at_best,
    curve_point,
    oracle,
    score_curve,
    upper_hull,
)


def test_aiq_of_flat_curve_over_range_is_its_quality() -> None:
    """A single point at the low end of the range gives aiq equal to its quality."""
    assert aiq([1.0], [0.7], 1.0, 3.0) == pytest.approx(0.7)


def test_aiq_counts_zero_below_first_point() -> None:
    """Quality below the hull's first point counts as 0 (no ramp from 0)."""
    assert aiq([2.0], [1.0], 1.0, 3.0) == pytest.approx(0.5)


def test_aiq_interpolates_linearly_between_points() -> None:
    """Between hull points the curve is the straight line (trapezoid area)."""
    assert aiq([0.0, 1.0], [0.5, 1.0], 0.0, 1.0) == pytest.approx(0.75)


def test_hull_makes_curve_non_decreasing_and_concave() -> None:
    """A dip and a point below the chord are both removed from the hull."""
    hull = upper_hull([0.0, 0.5, 1.0, 0.8], [0.0, 0.2, 1.0, 0.1])
    assert hull == [(0.0, 0.0), (1.0, 1.0)]
    assert aiq([0, 1, 0.5], [0.2, 0.2, 0.9], 0, 1) == pytest.approx(0.725)


def test_oracle_takes_cheapest_model_reaching_best_score() -> None:
    """The oracle picks per prompt the cheapest model with the best score."""
    s = np.array([[1.0, 1.0], [0.0, 1.0]])
    c = np.array([[2.0, 1.0], [1.0, 3.0]])
    assert oracle(s, c) == (pytest.approx(1.0), pytest.approx(2.0))


def test_cost_ratio_at_best_is_null_when_never_reached() -> None:
    """cost_ratio_at_best is None if no setting reaches the best single model's quality."""
    pts = [CurvePoint(0, 1.0, 0.5), CurvePoint(1, 2.0, 0.8)]
    assert cost_ratio_at_best(pts, 0.9, 4.0) is None
    assert cost_ratio_at_best(pts, 0.8, 4.0) == pytest.approx(0.5)


def test_score_curve_uses_train_best_single_on_test() -> None:
    """best_single is chosen on TRAIN and measured on TEST; the curve point reads records."""
    test_s = np.array([[1.0, 0.0], [1.0, 1.0]])
    test_c = np.array([[1.0, 2.0], [1.0, 2.0]])
    train_s = np.array([[0.0, 1.0]])
    p = curve_point(0.0, np.array([0, 0]), test_s, test_c)
    res = score_curve([p], test_s, test_c, train_s, ("a", "b"))
    assert res["baselines"]["best_single"]["model"] == "b"
    assert res["baselines"]["best_single"]["quality"] == pytest.approx(0.5)
    assert res["cost_ratio_at_best"] == pytest.approx(0.5)
    assert res["aiq"] == pytest.approx(1.0)
