"""Train a `LearnedRouter` from outcome records (JSONL files and/or stored feedback).

Steps (tqdm bars on the long ones): featurize every prompt; fit the task
classifier (multinomial logistic regression, prompt -> `source`); per-task
model quality with shrinkage toward each model's global mean; a per-prompt
logistic correction per task and model over the final question's features
(opt-in: `per_prompt=True`; the default is task level, see PER_PROMPT_DEFAULT)
(offset: the task mean; strong L2), kept for a (task, model) only where an
inner 5-fold CV on that task's training rows shows it lowers held-out
cross-entropy against the task mean alone (no knob: the comparison decides);
per-task, per-model linear cost in prompt length; calibrate the willingness_to_pay knob
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

from routecore.learned.data import DataError, Dataset, data_sha256, load_records
from routecore.routing.learned_model import (
    FORMAT_VERSION,
    Featurizer,
    LearnedRouter,
    logit_clipped,
    sigmoid,
    softmax,
)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

DEFAULT_DIM = 4096
KNOB_SETTINGS = 101
DEFAULT_TASK = "default"
QUESTION_L2 = 4.0  # L2 of the per-prompt logistic model (5-fold CV on both data sets)
SCALAR_WEIGHT = 0.3  # standardised scalar cues next to the unit-norm hashed vector
QUESTION_ITERS = 200
# Shipped default: task level. The gated per-prompt term wins on llmrouter (5-fold CV aiq
# +0.0048 +- 0.0017 vs task level) but ties on routerbench (+0.0008 +- 0.0036) and there
# reaches gpt-4's quality (cost_ratio_at_best not null) in 4/5 folds against 5/5 for task
# level: a null there is the costlier failure, so it is opt-in (`per_prompt=True`).
PER_PROMPT_DEFAULT = False
GATE_FOLDS = 5  # inner CV that decides, per task and model, whether the per-prompt term stays
PRIOR_STRENGTH = 5.0  # task means shrink toward each model's global mean by this many rows


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


def featurize_questions(prompts: Sequence[str], dim: int, progress: bool = False
                        ) -> tuple[F32, F32]:
    """Hashed vectors [n, dim] and scalar cues [n, k] of each prompt's final question."""
    fz = Featurizer(dim)
    V = np.empty((len(prompts), dim), dtype=np.float32)
    rows = []
    with _bar(len(prompts), "question features", progress) as bar:
        for i, p in enumerate(prompts):
            V[i], sc = fz.question(p)
            rows.append(sc)
            bar.update(1)
    k = len(rows[0]) if rows else 0
    S = np.asarray(rows, dtype=np.float32).reshape(len(prompts), k)
    return V, S


def _fit_logistic(F: F64, Y: F64, S: F64, off: F64, l2: float, iters: int) -> F64:
    """argmin_B sum S * (log(1 + e^z) - Y z) + l2/2 |B|^2, z = off + F @ B (L-BFGS)."""
    from scipy.optimize import minimize  # type: ignore[import-untyped]

    r, m = F.shape[1], Y.shape[1]

    def f(w: F64) -> tuple[float, F64]:
        Bt = w.reshape(r, m)
        zz = F @ Bt + off
        # log(1 + e^z) - y z, stably
        loss = float((S * (np.logaddexp(0.0, zz) - Y * zz)).sum())
        g = F.T @ (S * (sigmoid(zz) - Y)) + l2 * Bt
        return loss + 0.5 * l2 * float((Bt * Bt).sum()), g.ravel()

    res = minimize(f, np.zeros(r * m), jac=True, method="L-BFGS-B", options={"maxiter": iters})
    out: F64 = res.x.reshape(r, m)
    return out


def _fit_kernel(K: F64, Y: F64, S: F64, off: F64, l2: float, iters: int) -> F64:
    """The same fit from the rows' Gram matrix K = Z Z^T: returns A with W = Z^T A.

    The L2 optimum lies in the rows' span, and with K = U L U^T the problem over
    F = U L^(1/2) is the primal problem rotated (same iterates, same optimum), but
    of width n (rows) instead of d (features): cheap enough to refit in inner folds.
    """
    lam, U = np.linalg.eigh(K)
    ok = lam > max(float(lam[-1]), 1e-300) * 1e-9
    U, lam = U[:, ok], lam[ok]
    B = _fit_logistic(U * np.sqrt(lam), Y, S, off, l2, iters)
    A: F64 = (U / np.sqrt(lam)) @ B
    return A


def _xent(zz: F64, Y: F64, S: F64) -> F64:
    """Per-model held-out cross-entropy (summed over rows)."""
    out: F64 = (S * (np.logaddexp(0.0, zz) - Y * zz)).sum(axis=0)
    return out


def fit_question_model(Z: F32, y: npt.NDArray[np.int64], n_tasks: int, scores: F64, Q: F64, *,
                       l2: float = QUESTION_L2, iters: int = QUESTION_ITERS,
                       prior: F64 | None = None, gate: bool = True, progress: bool = False
                       ) -> tuple[F32, npt.NDArray[np.bool_]]:
    """Per task t and model m: P(score) = sigmoid(logit(Q[t, m]) + z @ R[:, t*M + m]).

    Cross-entropy (fractional scores allowed, unobserved ones skipped) + l2/2 |R|^2,
    by L-BFGS, one task at a time (all its models jointly, in the rows' span).

    `gate`: nested check, no extra knob: for each (task, model), a GATE_FOLDS-fold
    CV over that task's training rows compares the held-out cross-entropy of the task
    mean alone (shrunk toward `prior` as in training) with the task mean plus the
    per-prompt term; the term is kept (its column of R non-zero) only where it wins.
    Returns R [d, tasks * models] and the kept mask [tasks, models].
    """
    d = Z.shape[1]
    m = scores.shape[1]
    R = np.zeros((d, n_tasks * m), dtype=np.float32)
    kept = np.zeros((n_tasks, m), dtype=bool)
    seen = ~np.isnan(scores)
    Y = np.where(seen, scores, 0.0)
    with _bar(n_tasks, "per-prompt model", progress) as bar:
        for t in range(n_tasks):
            rows = np.flatnonzero(y == t)
            bar.update(1)
            if len(rows) < 10:
                continue
            Zt = Z[rows].astype(np.float64)
            K = Zt @ Zt.T
            Yt, St = Y[rows], seen[rows].astype(np.float64)
            keep = np.ones(m, dtype=bool)
            if gate:
                keep = _gate(K, Yt, St, Q[t] if prior is None else prior, l2, iters, seed=t)
            kept[t] = keep
            if not keep.any():
                continue
            A = _fit_kernel(K, Yt, St, logit_clipped(Q[t]), l2, iters)
            Wt = Zt.T @ A
            Wt[:, ~keep] = 0.0
            R[:, t * m:(t + 1) * m] = Wt
    return R, kept


def _gate(K: F64, Y: F64, S: F64, prior: F64, l2: float, iters: int, seed: int
          ) -> npt.NDArray[np.bool_]:
    """Which models' per-prompt term lowers held-out cross-entropy in an inner CV."""
    n = len(K)
    parts = np.array_split(np.random.default_rng(seed).permutation(n), min(GATE_FOLDS, n))
    with_term = np.zeros(Y.shape[1])
    mean_only = np.zeros(Y.shape[1])
    for k, te in enumerate(parts):
        tr = np.concatenate([p for j, p in enumerate(parts) if j != k])
        q = ((Y[tr] * S[tr]).sum(axis=0) + PRIOR_STRENGTH * prior) / (
            S[tr].sum(axis=0) + PRIOR_STRENGTH)
        off = logit_clipped(q)
        A = _fit_kernel(K[np.ix_(tr, tr)], Y[tr], S[tr], off, l2, iters)
        zz = off + K[np.ix_(te, tr)] @ A
        with_term += _xent(zz, Y[te], S[te])
        mean_only += _xent(np.broadcast_to(off, zz.shape), Y[te], S[te])
    out: npt.NDArray[np.bool_] = with_term < mean_only
    return out


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
                   settings: int = KNOB_SETTINGS, z: F32 | None = None) -> tuple[F64, F64]:
    """Knob table: w_i -> log lambda_i so mean training cost steps evenly from cheapest to best."""
    q, c = router.predict_x(X, n_chars, z)
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
                  X: F32 | None = None, Xq: tuple[F32, F32] | None = None,
                  per_prompt: bool = PER_PROMPT_DEFAULT, gate: bool = True) -> LearnedRouter:
    """Train from an in-memory `Dataset`.

    `X`, `Xq`: precomputed `featurize` / `featurize_questions` output (optional);
    `per_prompt=True` adds the per-prompt logistic correction (off by default, see
    PER_PROMPT_DEFAULT); `gate=False` then keeps it for every task and model instead of
    only where an inner CV says it helps.
    """
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
    seen = (~np.isnan(ds.costs)).sum(axis=0)  # nanmean warns on a model never priced
    mean_cost = np.where(seen > 0, np.nansum(ds.costs, axis=0) / np.maximum(seen, 1), np.nan)
    cost_ref = float(np.nanmax(mean_cost)) if np.isfinite(mean_cost).any() else 1.0
    Q = (q_sum + PRIOR_STRENGTH * q_prior) / (q_cnt + PRIOR_STRENGTH)
    z: F32 | None = None
    if per_prompt:
        V, Sc = Xq if Xq is not None else featurize_questions(ds.prompts, dim, progress)
        z_mu = Sc.mean(axis=0)
        sd = Sc.std(axis=0)
        z_scale = np.where(sd > 1e-6, SCALAR_WEIGHT / np.maximum(sd, 1e-6), 0.0).astype(np.float32)
        z = np.hstack([V, ((Sc - z_mu) * z_scale).astype(np.float32)])
        R, kept = fit_question_model(z, y, len(tasks), ds.scores, Q, prior=q_prior, gate=gate,
                                     progress=progress)
        if not kept.any():  # nothing earned its place: a task-level artifact
            R = np.zeros((0, 0), dtype=np.float32)
    else:
        R = np.zeros((0, 0), dtype=np.float32)
        kept = np.zeros((len(tasks), len(ds.models)), dtype=bool)
        z_mu = z_scale = np.zeros(0, dtype=np.float32)
    manifest: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": "task-posterior x per-task quality" + (
            " + per-prompt logistic correction on the final question" if R.size else "")
                  + "; per-task linear cost",
        "prior_strength": PRIOR_STRENGTH,
        "per_prompt_kept": {t: [m for m, k in zip(ds.models, kept[i], strict=True) if k]
                            for i, t in enumerate(tasks) if kept[i].any()},
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
        "R": R, "z_mu": z_mu.astype(np.float32), "z_scale": z_scale,
    }
    router = LearnedRouter(models=ds.models, tasks=tasks, dim=dim, arrays=arrays,
                           manifest=manifest)
    kw, kl = calibrate_knob(router, X, n_chars, ds.scores, ds.costs, z=z)
    arrays["knob_w"], arrays["knob_loglam"] = kw, kl
    return LearnedRouter(models=ds.models, tasks=tasks, dim=dim, arrays=arrays,
                         manifest=manifest)


def train(paths: Sequence[str | Path], out_dir: str | Path | None, *, dim: int = DEFAULT_DIM,
          progress: bool = True, extra: Dataset | None = None) -> LearnedRouter:
    """Train from JSONL files (plus `extra` records, e.g. exported feedback) and save.

    `extra` rows carry no task family (feedback's `source` is metadata, never a
    family): each is given the family a task classifier fit on the files predicts.
    """
    if not paths and extra is None:
        raise DataError("train: give at least one --data file or --feedback database")
    ds = load_records(paths) if paths else None
    if extra is not None:
        ds = extra if ds is None else merge(ds, label_tasks(ds, extra, dim))
    assert ds is not None
    router = train_dataset(ds, dim=dim, progress=progress, manifest_extra={
        "data_sha256": data_sha256(paths), "data_files": [str(p) for p in paths],
        "extra_records": 0 if extra is None else len(extra)})
    if out_dir is not None:
        router.save(out_dir)
    return router


def label_tasks(labelled: Dataset, rows: Dataset, dim: int = DEFAULT_DIM) -> Dataset:
    """`rows` with each prompt's most likely task family under a classifier fit on `labelled`."""
    tasks = tuple(sorted({s or DEFAULT_TASK for s in labelled.sources}))
    y = np.array([tasks.index(s or DEFAULT_TASK) for s in labelled.sources], dtype=np.int64)
    W, b = fit_task_classifier(featurize(labelled.prompts, dim), y, len(tasks))
    best = np.argmax((featurize(rows.prompts, dim) @ W).astype(np.float64) + b, axis=1)
    return Dataset(ids=rows.ids, prompts=rows.prompts, sources=tuple(tasks[i] for i in best),
                   models=rows.models, scores=rows.scores, costs=rows.costs)


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
