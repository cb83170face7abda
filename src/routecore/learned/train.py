"""Train a `LearnedRouter` from outcome records (JSONL files and/or stored feedback).

Steps (tqdm bars on the long ones): featurize every prompt; fit the task
classifier (multinomial logistic regression, prompt -> `source`); per-task
model quality with shrinkage toward each model's global mean; per-task,
per-model linear cost in prompt length; calibrate the willingness_to_pay knob
so equal knob steps are roughly equal steps of mean training cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .data import DataError, Dataset, data_sha256, load_records
from .model import FORMAT_VERSION, Featurizer, LearnedRouter, softmax

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

DEFAULT_DIM = 4096
KNOB_SETTINGS = 101
DEFAULT_TASK = "default"


def _bar(total: int, desc: str, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, leave=False, unit="it")


def featurize(prompts: Sequence[str], dim: int, progress: bool = False) -> F32:
    """Feature matrix [n, dim] for prompts, as `LearnedRouter.features` computes it."""
    fz = Featurizer(dim)
    X = np.empty((len(prompts), dim), dtype=np.float32)
    with _bar(len(prompts), "features", progress) as bar:
        for i, p in enumerate(prompts):
            X[i] = fz(p)
            bar.update(1)
    return X


def fit_task_classifier(X: F32, y: npt.NDArray[np.int64], n_tasks: int, *, l2: float = 1e-4,
                        iters: int = 300, lr: float = 1.0, progress: bool = False
                        ) -> tuple[F32, F64]:
    """Multinomial logistic regression by full-batch gradient descent with momentum."""
    n, d = X.shape
    W = np.zeros((d, n_tasks), dtype=np.float32)
    b = np.zeros(n_tasks, dtype=np.float64)
    if n_tasks == 1:
        return W, b
    Y = np.eye(n_tasks, dtype=np.float64)[y]
    vW = np.zeros_like(W)
    vb = np.zeros_like(b)
    with _bar(iters, "task classifier", progress) as bar:
        for _ in range(iters):
            P = softmax((X @ W).astype(np.float64) + b)
            G = (P - Y) / n
            gW = (X.T @ G.astype(np.float32)) + np.float32(l2) * W
            vW = np.float32(0.9) * vW - np.float32(lr) * gW
            vb = 0.9 * vb - lr * G.sum(axis=0)
            W += vW
            b += vb
            bar.update(1)
    return W, b


def _task_stats(y: npt.NDArray[np.int64], n_tasks: int, scores: F64) -> tuple[F64, F64, F64]:
    """Per-task score sums and counts (NaN = not observed) and each model's global mean."""
    seen = ~np.isnan(scores)
    s = np.where(seen, scores, 0.0)
    onehot = np.eye(n_tasks)[y]
    q_sum = onehot.T @ s
    q_cnt = onehot.T @ seen.astype(np.float64)
    tot = np.maximum(seen.sum(axis=0), 1)
    prior = np.where(seen.any(axis=0), s.sum(axis=0) / tot, 0.5)
    return q_sum, q_cnt, prior


def _cost_model(y: npt.NDArray[np.int64], n_tasks: int, n_chars: F64, costs: F64
                ) -> tuple[F64, F64, F64]:
    """Per task and model: cost = a + s * n_chars (least squares; mean when degenerate)."""
    m = costs.shape[1]
    a = np.zeros((n_tasks, m))
    s = np.zeros((n_tasks, m))
    seen_all = ~np.isnan(costs)
    glob = np.array([np.mean(costs[seen_all[:, j], j]) if seen_all[:, j].any() else 0.0
                     for j in range(m)])
    for t in range(n_tasks):
        rows = y == t
        for j in range(m):
            ok = rows & seen_all[:, j]
            c = costs[ok, j]
            if len(c) == 0:
                a[t, j] = glob[j]
                continue
            L = n_chars[ok]
            if len(c) >= 5 and np.ptp(L) > 0:
                A = np.stack([np.ones_like(L), L], axis=1)
                coef = np.linalg.lstsq(A, c, rcond=None)[0]
                a[t, j], s[t, j] = coef
            else:
                a[t, j] = c.mean()
    pos = np.where(seen_all, costs, np.inf).min(axis=0)
    floor = np.where(np.isfinite(pos), np.maximum(pos, 0.0) * 0.5, 0.0)
    return a, s, floor


def calibrate_knob(router: LearnedRouter, X: F32, n_chars: F64, scores: F64, costs: F64,
                   settings: int = KNOB_SETTINGS) -> tuple[F64, F64]:
    """Knob table: w_i -> log lambda_i so mean training cost steps evenly from cheapest to best."""
    q, c = router.predict_x(X, n_chars)
    truth = np.where(np.isnan(costs), c, costs)
    lams = np.geomspace(1e-5, 1e5, 400)
    mean_cost = np.empty(len(lams))
    rows = np.arange(len(q))
    for i, lam in enumerate(lams):
        pick = np.argmax(q - lam * c / router.cost_ref, axis=1)
        mean_cost[i] = truth[rows, pick].mean()
    hi = truth[rows, np.argmax(q - 1e-9 * c / router.cost_ref, axis=1)].mean()
    lo = truth[rows, np.argmin(c - 1e-9 * router.cost_ref * q, axis=1)].mean()
    # cost falls with lambda; make it monotone, then invert at evenly spaced targets
    mono = np.minimum.accumulate(mean_cost)
    w = np.linspace(0.0, 1.0, settings)
    targets = lo + w * (hi - lo)
    loglam = np.empty(settings)
    xs = mono[::-1]  # increasing cost
    ys = np.log(lams)[::-1]
    for i, tgt in enumerate(targets):
        loglam[i] = float(np.interp(tgt, xs, ys)) if hi > lo else 0.0
    loglam[0] = math.log(lams[-1])
    loglam[-1] = math.log(lams[0])
    return w, np.minimum.accumulate(loglam)


def train_dataset(ds: Dataset, *, dim: int = DEFAULT_DIM, progress: bool = False,
                  manifest_extra: dict[str, Any] | None = None,
                  X: F32 | None = None) -> LearnedRouter:
    """Train from an in-memory `Dataset` (`X`: precomputed `featurize` output, optional)."""
    if len(ds) == 0:
        raise DataError("train: no records")
    tasks = tuple(sorted({s or DEFAULT_TASK for s in ds.sources}))
    y = np.array([tasks.index(s or DEFAULT_TASK) for s in ds.sources], dtype=np.int64)
    if X is None:
        X = featurize(ds.prompts, dim, progress)
    n_chars = np.array([float(len(p)) for p in ds.prompts])
    W, b = fit_task_classifier(X, y, len(tasks), progress=progress)
    q_sum, q_cnt, q_prior = _task_stats(y, len(tasks), ds.scores)
    cost_a, cost_s, cost_floor = _cost_model(y, len(tasks), n_chars, ds.costs)
    mean_cost = np.nanmean(ds.costs, axis=0)
    cost_ref = float(np.nanmax(mean_cost)) if np.isfinite(mean_cost).any() else 1.0
    manifest: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": "task-posterior x per-task quality; per-task linear cost",
        "prior_strength": 5.0,
        "cost_ref": cost_ref if cost_ref > 0 else 1.0,
        "n_train": len(ds),
        "knob": {"name": "willingness_to_pay", "range": [0.0, 1.0],
                 "rule": "argmax quality - lambda(w) * cost / cost_ref; w=0 always-cheapest, "
                         "w=1 best quality; lambda(w) interpolated in log space from "
                         "knob_w.npy/knob_loglam.npy, calibrated so mean training cost rises "
                         "evenly with w"},
        **(manifest_extra or {}),
    }
    arrays: dict[str, npt.NDArray[Any]] = {
        "W": W, "b": b, "q_sum": q_sum, "q_cnt": q_cnt, "q_prior": q_prior,
        "cost_a": cost_a, "cost_s": cost_s, "cost_floor": cost_floor,
        "B": np.zeros((0, 0), dtype=np.float32),
        "knob_w": np.array([0.0, 1.0]), "knob_loglam": np.array([0.0, 0.0]),
    }
    router = LearnedRouter(models=ds.models, tasks=tasks, dim=dim, arrays=arrays,
                           manifest=manifest)
    kw, kl = calibrate_knob(router, X, n_chars, ds.scores, ds.costs)
    arrays["knob_w"], arrays["knob_loglam"] = kw, kl
    return LearnedRouter(models=ds.models, tasks=tasks, dim=dim, arrays=arrays,
                         manifest=manifest)


def train(paths: Sequence[str | Path], out_dir: str | Path | None, *, dim: int = DEFAULT_DIM,
          progress: bool = True, extra: Dataset | None = None) -> LearnedRouter:
    """Train from JSONL files (plus `extra` records, e.g. exported feedback) and save."""
    if not paths and extra is None:
        raise DataError("train: give at least one --data file or --feedback database")
    ds = load_records(paths) if paths else None
    if extra is not None:
        ds = extra if ds is None else merge(ds, extra)
    assert ds is not None
    router = train_dataset(ds, dim=dim, progress=progress, manifest_extra={
        "data_sha256": data_sha256(paths), "data_files": [str(p) for p in paths],
        "extra_records": 0 if extra is None else len(extra)})
    if out_dir is not None:
        router.save(out_dir)
    return router


def merge(a: Dataset, b: Dataset) -> Dataset:
    """Concatenate two datasets over the union of their models (NaN where unobserved)."""
    models = tuple(sorted(set(a.models) | set(b.models)))

    def widen(d: Dataset, arr: F64) -> F64:
        out = np.full((len(d), len(models)), np.nan)
        for j, m in enumerate(d.models):
            out[:, models.index(m)] = arr[:, j]
        return out

    return Dataset(ids=a.ids + b.ids, prompts=a.prompts + b.prompts, sources=a.sources + b.sources,
                   models=models, scores=np.vstack([widen(a, a.scores), widen(b, b.scores)]),
                   costs=np.vstack([widen(a, a.costs), widen(b, b.costs)]))
