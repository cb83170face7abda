"""`routecore eval` output a reader can use: the curve as text, and a plot whose labels
stay inside the axes and whose legend covers no point."""

from __future__ import annotations

from typing import Any

import pytest

from routecore.learned.commands import format_curve


def _result() -> dict[str, Any]:
    curve = [{"setting": i / 10, "cost": 1e-4 * (1 + i), "quality": 0.6 + 0.03 * i}
             for i in range(11)]
    curve[3] = dict(curve[2], setting=0.3)  # two settings landing on one point share a row
    models = {"mistralai/mistral-7b-chat": {"quality": 0.6, "cost": 1e-4},
              "zero-one-ai/Yi-34B-Chat": {"quality": 0.7, "cost": 4e-4},
              "mistralai/mixtral-8x7b-chat": {"quality": 0.705, "cost": 3.9e-4},
              "gpt-4-1106-preview-with-a-long-name": {"quality": 0.9, "cost": 1.2e-3}}
    best = {"model": "gpt-4-1106-preview-with-a-long-name", "quality": 0.9, "cost": 1.2e-3}
    return {"curve": curve, "aiq": 0.8, "baselines": {
        "models": models, "best_single": best, "oracle": {"quality": 0.95, "cost": 2e-4},
        "random": {"quality": 0.7, "cost": 5e-4}}}


def test_curve_prints_one_row_per_point() -> None:
    """The text curve lists each setting's cost and score, merging settings on one point."""
    text = format_curve(_result()["curve"])
    lines = text.splitlines()
    assert lines[0].startswith("curve") and "cost $" in lines[1]
    assert len(lines) == 2 + 10 and any(" 0.20-0.30 " in line for line in lines)
    assert lines[-1].split()[:3] == ["1.00", "0.001100", "0.9000"]


def test_plot_labels_stay_inside_the_axes() -> None:
    """Every model label (even a long one at the costliest point) lies inside the axes,
    and the legend sits beside the axes instead of over the points."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from routecore.learned.evaluate import curve_figure

    fig = curve_figure(_result())
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        ax = fig.axes[0]
        box = ax.get_window_extent(renderer)
        labels = [t for t in ax.texts]
        assert len(labels) == 4
        for t in labels:
            ext = t.get_window_extent(renderer)
            assert box.x0 <= ext.x0 and ext.x1 <= box.x1 and box.y0 <= ext.y0 and ext.y1 <= box.y1, \
                t.get_text()
        legend = ax.get_legend().get_window_extent(renderer)
        assert legend.x0 >= box.x1
    finally:
        plt.close(fig)
