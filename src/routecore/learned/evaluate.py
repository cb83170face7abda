"""Evaluate a learned router on held-out records through the server's `Router`.

`evaluate(train_paths, test_paths)` trains on the train files, writes the
artifact, builds a `Config` whose models are the data's models (provider
"data", prices from the training costs) with strategy "learned" pointing at
that artifact, and routes every test prompt at every knob setting with
`Router.route` -- the same code path the gRPC server runs. The metrics are the
data README's (see `scoring`).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from routecore.learned.data import Dataset, load_records
from routecore.learned.scoring import CurvePoint, curve_point, score_curve
from routecore.learned.train import DEFAULT_DIM, train_dataset
from routecore.routing.learned_model import LearnedRouter

DEFAULT_SETTINGS = 51


def settings_grid(n: int) -> list[float]:
    """`n` knob settings from always-cheapest (0) to best quality (1)."""
    if n < 2:
        raise ValueError("settings: need at least 2")
    return [i / (n - 1) for i in range(n)]


def data_config(router: LearnedRouter, artifact: str | Path, train: Dataset) -> Any:
    """A validated `Config` whose registry is the data's models, strategy learned."""
    from routecore.config import parse_config

    mean_chars = float(np.mean([len(p) for p in train.prompts])) or 1.0
    models: dict[str, Any] = {}
    for j, m in enumerate(train.models):
        col = train.costs[:, j]
        mean_cost = float(np.nanmean(col)) if np.isfinite(col).any() else 0.0
        per_mtok = mean_cost / (mean_chars / 4.0) * 1e6  # ~4 chars a token
        q = train.scores[:, j]
        models[m] = {
            "provider": "data", "price": {"input": per_mtok, "output": 0.0},
            "context_window": 10_000_000, "max_output_tokens": 100_000,
            "capabilities": ["code", "tools", "json"],
            "quality": {"default": float(np.nanmean(q)) if np.isfinite(q).any() else 0.5},
            "latency": {"p50_ms": 1000.0, "p95_ms": 2000.0},
        }
    raw: dict[str, Any] = {
        "router_version": f"learned-eval-{router.manifest.get('created', '')}",
        "classifier": {"mode": "embedding", "feature_dim": router.dim},
        "categories": {"general": {"description": "any prompt", "exemplars": ["Answer this."]}},
        "models": models,
        "routing": {"default_strategy": "learned", "default_output_tokens": 1,
                    "max_fallbacks": 0,
                    "learned": {"artifact": str(artifact), "willingness_to_pay": 0.5}},
    }
    return parse_config(raw, "<learned evaluate>")


def make_router(router: LearnedRouter, artifact: str | Path, train: Dataset) -> Any:
    """The server's `Router` over the data's models, or `router` itself if unavailable."""
    try:
        from routecore.routing.router import Router
    except ImportError:  # pragma: no cover - router module not importable in this build
        return router
    return Router.from_config(data_config(router, artifact, train))


def _route(router_or_learned: Any, text: str, wtp: float, models: Sequence[str]) -> int:
    """The one routing call of evaluation: index (into `models`) of the chosen model."""
    if isinstance(router_or_learned, LearnedRouter):
        q, c = router_or_learned.predict(text, None)
        return router_or_learned.choose(q, c, wtp, np.ones(len(q), dtype=bool))
    from routecore.domain import RouteRequest

    decision = router_or_learned.route(RouteRequest(prompt=text, strategy="learned",
                                                    willingness_to_pay=wtp))
    return list(models).index(decision.model)


def route_all(router_or_learned: Any, test: Dataset, settings: Sequence[float],
              models: Sequence[str], progress: bool = False) -> npt.NDArray[np.int64]:
    """choices[s, i]: model index for setting s and test prompt i."""
    from tqdm import tqdm

    out = np.empty((len(settings), len(test)), dtype=np.int64)
    with tqdm(total=len(test), desc="route", disable=not progress, leave=False) as bar:
        for i, text in enumerate(test.prompts):
            for s, w in enumerate(settings):
                out[s, i] = _route(router_or_learned, text, w, models)
            bar.update(1)
    return out


def score_choices(choices: npt.NDArray[np.int64], settings: Sequence[float], test: Dataset,
                  train: Dataset) -> dict[str, Any]:
    """README metrics for a matrix of choices (rows: settings)."""
    points: list[CurvePoint] = [curve_point(w, choices[s], test.scores, test.costs)
                                for s, w in enumerate(settings)]
    return score_curve(points, test.scores, test.costs, train.scores, test.models)


def align(test: Dataset, models: Sequence[str]) -> Dataset:
    """`test` with its model columns in `models` order (they must be the same set)."""
    if set(test.models) != set(models):
        from routecore.learned.data import DataError

        raise DataError(f"test models {sorted(test.models)} differ from train models "
                        f"{sorted(models)}")
    idx = [test.models.index(m) for m in models]
    return Dataset(ids=test.ids, prompts=test.prompts, sources=test.sources, models=tuple(models),
                   scores=test.scores[:, idx], costs=test.costs[:, idx])


def evaluate(train_paths: Sequence[str | Path], test_paths: Sequence[str | Path], *,
             settings: int = DEFAULT_SETTINGS, decisions_out: str | Path | None = None,
             plot: str | Path | None = None, dim: int = DEFAULT_DIM,
             progress: bool = False) -> dict[str, Any]:
    """Train on `train_paths`, route `test_paths` through the Router, score the curve."""
    train = load_records(train_paths)
    test = align(load_records(test_paths), train.models)
    learned = train_dataset(train, dim=dim, progress=progress)
    grid = settings_grid(settings)
    with tempfile.TemporaryDirectory(prefix="routecore-eval-") as tmp:
        learned.save(tmp)
        router = make_router(learned, tmp, train)
        choices = route_all(router, test, grid, train.models, progress)
    result = score_choices(choices, grid, test, train)
    result["path"] = "router" if not isinstance(router, LearnedRouter) else "learned-direct"
    result["n_train"], result["n_test"] = len(train), len(test)
    if decisions_out is not None:
        with Path(decisions_out).open("w", encoding="utf-8") as fh:
            for s, w in enumerate(grid):
                for i, rid in enumerate(test.ids):
                    fh.write(json.dumps({"setting": w, "id": rid,
                                         "model": train.models[int(choices[s, i])]}) + "\n")
    if plot is not None:
        plot_curve(result, plot)
    return result


def plot_curve(result: dict[str, Any], path: str | Path, title: str = "learned router") -> None:
    """PNG of the cost-quality curve, its hull, each model and the baselines."""
    import matplotlib.pyplot as plt

    fig = curve_figure(result, title)
    # bbox_inches="tight" keeps every label, the legend and the axis titles in the image.
    fig.savefig(path, dpi=120, bbox_inches="tight", pad_inches=0.2)
    plt.close(fig)


def curve_figure(result: dict[str, Any], title: str = "learned router") -> Any:
    """The matplotlib figure of `plot_curve` (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from routecore.learned.scoring import upper_hull

    curve = result["curve"]
    cs = [p["cost"] for p in curve]
    qs = [p["quality"] for p in curve]
    hull = upper_hull(cs, qs)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(cs, qs, "o", ms=3, label="router settings")
    ax.plot([h[0] for h in hull], [h[1] for h in hull], "-", label=f"hull (aiq {result['aiq']:.3f})")
    base = result["baselines"]
    placed: list[tuple[float, float]] = []
    logs = [math.log10(max(c, 1e-12)) for c in cs + [m["cost"] for m in base["models"].values()]]
    right_edge = max(logs) - 0.2 * (max(logs) - min(logs))
    span = max(qs + [m["quality"] for m in base["models"].values()]) - min(
        qs + [m["quality"] for m in base["models"].values()]) or 1.0
    for name, mq in sorted(base["models"].items(), key=lambda kv: kv[1]["cost"]):
        ax.plot(mq["cost"], mq["quality"], "x", color="grey")
        # A label next to an already labelled neighbour goes below its point, not on top.
        at = (math.log10(max(mq["cost"], 1e-12)), mq["quality"] / span)
        near = any(abs(at[0] - x) < 0.3 and abs(at[1] - y) < 0.04 for x, y in placed)
        placed.append(at)
        right = at[0] > right_edge  # near the right edge the label reads leftwards
        ax.annotate(name.split("/")[-1], (mq["cost"], mq["quality"]), fontsize=6,
                    xytext=(-4 if right else 4, -9 if near else 3), textcoords="offset points",
                    ha="right" if right else "left")
    bs = base["best_single"]
    ax.plot(bs["cost"], bs["quality"], "s", color="red", label=f"best single ({bs['model']})")
    ax.plot(base["oracle"]["cost"], base["oracle"]["quality"], "*", ms=10, color="green",
            label="oracle")
    ax.plot(base["random"]["cost"], base["random"]["quality"], "D", color="black", label="random")
    ax.set_xscale("log")
    ax.set_xlabel("mean cost per prompt (USD)")
    ax.set_ylabel("mean score")
    ax.set_title(title)
    ax.margins(x=0.08, y=0.06)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: hid points
    return fig
