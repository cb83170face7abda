"""5-fold CV of learned routers on the shared routing data (README scoring).

    python bench/learned.py [--folds 5] [--datasets routerbench llmrouter] [--json]

Methods, all scored with the same 51 knob settings per fold:

* `learned`: the shipped `routecore.learned` router (task posteriors x per-task
  quality + per-prompt logistic correction on the final question, per-task
  linear cost, calibrated knob), via `predict_x`/`choose_batch`;
* `learned_task`: the same without the per-prompt correction (task level only);
* `knn_tfidf`: the data README's reference, kNN (k=40, cosine) over TF-IDF,
  quality = neighbours' mean score, cost = neighbours' mean cost, argmax
  quality - lambda*cost over a geometric lambda sweep;
* `task_centroid`: nearest task centroid over the same hashed features, with
  per-task mean quality and cost (the README's strong simple baseline).

Data is read by path from $ROUTECORE_DATA_DIR or ../shared/data/routing.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from routecore.learned.data import Dataset, default_data_dir, load_records  # noqa: E402
from routecore.learned.evaluate import score_choices, settings_grid  # noqa: E402
from routecore.learned.train import (  # noqa: E402
    DEFAULT_DIM,
    featurize,
    featurize_questions,
    train_dataset,
)

TOKEN = re.compile(r"(?u)\b\w\w+\b")


def tfidf(train: list[str], test: list[str]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Word TF-IDF (smooth idf, l2 norm), fitted on `train`."""
    docs = [Counter(TOKEN.findall(t.lower())) for t in train]
    vocab: dict[str, int] = {}
    df: Counter[str] = Counter()
    for d in docs:
        df.update(d.keys())
    for w in df:
        vocab[w] = len(vocab)
    idf = np.array([math.log((1 + len(train)) / (1 + df[w])) + 1 for w in vocab])

    def mat(texts: list[str], counts: list[Counter[str]] | None = None) -> sp.csr_matrix:
        rows, cols, vals = [], [], []
        for i, t in enumerate(texts):
            c = counts[i] if counts is not None else Counter(TOKEN.findall(t.lower()))
            for w, n in c.items():
                j = vocab.get(w)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
                    vals.append(n * idf[j])
        m = sp.csr_matrix((vals, (rows, cols)), shape=(len(texts), len(vocab)))
        norm = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        norm[norm == 0] = 1.0
        return sp.csr_matrix(sp.diags(1.0 / norm) @ m)

    return mat(train, docs), mat(test)


def sweep_choices(q: np.ndarray, c: np.ndarray, cost_ref: float, n: int) -> np.ndarray:
    """Choices per setting for argmax q - lambda*c: w=0 cheapest, w=1 best, geometric between."""
    out = np.empty((n, len(q)), dtype=np.int64)
    lams = np.geomspace(1e3, 1e-3, n - 2)
    out[0] = np.argmin(c - 1e-12 * q, axis=1)
    out[-1] = np.argmax(q - 1e-12 * c, axis=1)
    for i, lam in enumerate(lams, 1):
        out[i] = np.argmax(q - lam * c / cost_ref, axis=1)
    return out


def cv(name: str, ds: Dataset, folds: int, seed: int, dim: int, settings: int) -> dict[str, Any]:
    X = featurize(ds.prompts, dim)
    V, S = featurize_questions(ds.prompts, dim)
    n_chars = np.array([float(len(p)) for p in ds.prompts])
    perm = np.random.default_rng(seed).permutation(len(ds))
    parts = np.array_split(perm, folds)
    grid = settings_grid(settings)
    per: dict[str, list[dict[str, Any]]] = {}
    for f in range(folds):
        te = parts[f]
        tr = np.concatenate([parts[g] for g in range(folds) if g != f])
        train, test = ds.subset(tr), ds.subset(te)
        cost_ref = float(train.costs.mean(axis=0).max())
        t0 = time.perf_counter()
        router = train_dataset(train, dim=dim, X=X[tr], Xq=(V[tr], S[tr]))
        q, c = router.predict_x(X[te], n_chars[te], router.question_z(V[te], S[te]))
        ch = np.stack([router.choose_batch(q, c, w) for w in grid])
        res = score_choices(ch, grid, test, train)
        res["train_s"] = time.perf_counter() - t0
        per.setdefault("learned", []).append(res)
        base = train_dataset(train, dim=dim, X=X[tr], per_prompt=False)
        q0, c0 = base.predict_x(X[te], n_chars[te])
        ch0 = np.stack([base.choose_batch(q0, c0, w) for w in grid])
        per.setdefault("learned_task", []).append(score_choices(ch0, grid, test, train))
        # README reference: kNN over TF-IDF, k=40
        a, b = tfidf(list(train.prompts), list(test.prompts))
        sims = (b @ a.T).toarray()
        idx = np.argpartition(-sims, 40, axis=1)[:, :40]
        qk, ck = train.scores[idx].mean(axis=1), train.costs[idx].mean(axis=1)
        per.setdefault("knn_tfidf", []).append(
            score_choices(sweep_choices(qk, ck, cost_ref, settings), grid, test, train))
        # nearest task centroid over hashed features
        tasks = sorted(set(train.sources))
        y = np.array([tasks.index(s) for s in train.sources])
        cent = np.stack([X[tr][y == t].mean(axis=0) for t in range(len(tasks))])
        cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-9)
        near = np.argmax(X[te] @ cent.T, axis=1)
        qt = np.stack([train.scores[y == t].mean(axis=0) for t in range(len(tasks))])
        ct = np.stack([train.costs[y == t].mean(axis=0) for t in range(len(tasks))])
        per.setdefault("task_centroid", []).append(
            score_choices(sweep_choices(qt[near], ct[near], cost_ref, settings), grid, test,
                          train))
    out: dict[str, Any] = {}
    for method, rs in per.items():
        crab = [r["cost_ratio_at_best"] for r in rs]
        reached = [x for x in crab if x is not None]
        out[method] = {
            "aiq": float(np.mean([r["aiq"] for r in rs])),
            "aiq_std": float(np.std([r["aiq"] for r in rs])),
            "cost_ratio_std": float(np.std(reached)) if reached else None,
            "aiq_folds": [round(r["aiq"], 4) for r in rs],
            "quality_max": float(np.mean([r["quality_max"] for r in rs])),
            "cost_ratio_at_best": float(np.mean(reached)) if reached else None,
            "cost_ratio_reached": f"{len(reached)}/{len(rs)}",
        }
    out["learned"]["aiq_minus_knn_tfidf"] = out["learned"]["aiq"] - out["knn_tfidf"]["aiq"]
    # paired per-fold differences vs the task-level router: the noise that matters
    d = [a["aiq"] - b["aiq"] for a, b in zip(per["learned"], per["learned_task"], strict=True)]
    out["learned"]["aiq_minus_task_level"] = float(np.mean(d))
    out["learned"]["aiq_minus_task_level_std"] = float(np.std(d))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["routerbench", "llmrouter"])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dim", type=int, default=DEFAULT_DIM)
    ap.add_argument("--settings", type=int, default=51)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", action="store_true")
    ns = ap.parse_args()
    data_dir = Path(ns.data_dir) if ns.data_dir else default_data_dir(ROOT)
    results: dict[str, Any] = {}
    for name in ns.datasets:
        path = data_dir / f"{name}.train.jsonl"
        if not path.is_file():
            print(f"skip {name}: {path} not found", file=sys.stderr)
            continue
        results[name] = cv(name, load_records([path]), ns.folds, ns.seed, ns.dim, ns.settings)
        if not ns.json:
            for method, r in results[name].items():
                crab = r["cost_ratio_at_best"]
                print(f"{name:12s} {method:14s} aiq={r['aiq']:.4f} "
                      f"quality_max={r['quality_max']:.4f} cost_ratio_at_best="
                      f"{'null' if crab is None else f'{crab:.3f}'} "
                      f"(reached {r['cost_ratio_reached']})", flush=True)
    if ns.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
