"""5-fold CV of learned routers on the shared routing data (README scoring).

    python bench/learned.py [--folds 5] [--datasets routerbench llmrouter] [--json]
    python bench/learned.py --latency [--json]
    python bench/learned.py --features [--json]   # hashed vs static-embedding features

Methods, all scored with the same 51 knob settings per fold:

* `learned`: the shipped `routecore.learned` router with its training defaults
  (task posteriors x per-task quality, per-task linear cost, calibrated knob;
  today task level, see train.PER_PROMPT_DEFAULT), via `predict_x`/`choose_batch`;
* `learned_gated`: plus the per-prompt logistic correction on the final
  question, kept per task and model only where an inner CV on the training rows
  says it lowers held-out cross-entropy (`per_prompt=True`);
* `learned_ungated`: the per-prompt term kept everywhere (052e465);
* `learned_task`: no per-prompt correction (task level only), the paired reference;
* `knn_tfidf`: the data README's reference, kNN (k=40, cosine) over TF-IDF,
  quality = neighbours' mean score, cost = neighbours' mean cost, argmax
  quality - lambda*cost over a geometric lambda sweep;
* `task_centroid`: nearest task centroid over the same hashed features, with
  per-task mean quality and cost (the README's strong simple baseline).

`--features`: the task-level learned router and the nearest task centroid, each
over the hashed n-grams (at --dim) and over the shipped static sentence
embedding (128 dims, routing.embedding, of the prompt's ask window), on the
same folds: the aiq the static embedding buys or costs as router features.

Data is read by path from $ROUTECORE_DATA_DIR or ../shared/data/routing.

`--latency`: predict+choose p50/p99 (thread CPU time, so a loaded box's
preemptions do not count; the quietest of 5 rounds of 1,000 calls) for
2,000-char prompts on a router of the size trained on 10,000 prompts of 13
tasks for 11 models at dim 4096 (array shapes do not depend on the row count;
weights are random): per-prompt term kept for every task (the worst case) or
dropped for all (what the gate often leaves), with and without a precomputed
`vec`, for a prompt that is its own final question and for a few-shot one.
Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
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
    PER_PROMPT_DEFAULT,
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


def fold_splits(ds: Dataset, folds: int, seed: int
                ) -> Iterator[tuple[np.ndarray, np.ndarray, Dataset, Dataset, float]]:
    """(train rows, test rows, train set, test set, cost reference) of each fold."""
    parts = np.array_split(np.random.default_rng(seed).permutation(len(ds)), folds)
    for f in range(folds):
        te = parts[f]
        tr = np.concatenate([parts[g] for g in range(folds) if g != f])
        train = ds.subset(tr)
        yield tr, te, train, ds.subset(te), float(train.costs.mean(axis=0).max())


def static_features(prompts: tuple[str, ...] | list[str]) -> np.ndarray:
    """The shipped static sentence embedding of each prompt's ask window."""
    from routecore.routing.category_head import ask_window
    from routecore.routing.embedding import StaticEmbedder

    emb = StaticEmbedder.shipped()
    return np.stack([emb.embed(ask_window(p)) for p in prompts])


def task_centroid(X: np.ndarray, tr: np.ndarray, te: np.ndarray, train: Dataset, test: Dataset,
                  cost_ref: float, settings: int, grid: Any) -> dict[str, Any]:
    """Nearest task centroid over X's rows, with per-task mean quality and cost."""
    tasks = sorted(set(train.sources))
    y = np.array([tasks.index(s) for s in train.sources])
    cent = np.stack([X[tr][y == t].mean(axis=0) for t in range(len(tasks))])
    cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-9)
    near = np.argmax(X[te] @ cent.T, axis=1)
    qt = np.stack([train.scores[y == t].mean(axis=0) for t in range(len(tasks))])
    ct = np.stack([train.costs[y == t].mean(axis=0) for t in range(len(tasks))])
    return score_choices(sweep_choices(qt[near], ct[near], cost_ref, settings), grid, test, train)


def cv_features(ds: Dataset, folds: int, seed: int, dim: int, settings: int) -> dict[str, Any]:
    """Hashed n-grams against the static sentence embedding as the router's features: the
    task-level learned router and the nearest task centroid over each, same folds."""
    X = featurize(ds.prompts, dim)
    E = static_features(ds.prompts)
    n_chars = np.array([float(len(p)) for p in ds.prompts])
    grid = settings_grid(settings)
    per: dict[str, list[dict[str, Any]]] = {}
    for tr, te, train, test, cost_ref in fold_splits(ds, folds, seed):
        for feats, F in (("hashed", X), ("static", E)):
            router = train_dataset(train, dim=F.shape[1], X=F[tr], per_prompt=False)
            q, c = router.predict_x(F[te], n_chars[te])
            ch = np.stack([router.choose_batch(q, c, w) for w in grid])
            per.setdefault(f"learned_task_{feats}", []).append(score_choices(ch, grid, test, train))
            per.setdefault(f"task_centroid_{feats}", []).append(
                task_centroid(F, tr, te, train, test, cost_ref, settings, grid))
    return {m: {"aiq": float(np.mean([r["aiq"] for r in rs])),
                "aiq_std": float(np.std([r["aiq"] for r in rs])),
                "quality_max": float(np.mean([r["quality_max"] for r in rs]))}
            for m, rs in per.items()}


def cv(name: str, ds: Dataset, folds: int, seed: int, dim: int, settings: int) -> dict[str, Any]:
    X = featurize(ds.prompts, dim)
    V, S = featurize_questions(ds.prompts, dim)
    n_chars = np.array([float(len(p)) for p in ds.prompts])
    grid = settings_grid(settings)
    per: dict[str, list[dict[str, Any]]] = {}
    for tr, te, train, test, cost_ref in fold_splits(ds, folds, seed):
        variants = (("learned", PER_PROMPT_DEFAULT, True), ("learned_gated", True, True),
                    ("learned_ungated", True, False))
        for method, per_prompt, gate in variants:
            t0 = time.perf_counter()
            router = train_dataset(train, dim=dim, X=X[tr], Xq=(V[tr], S[tr]),
                                   per_prompt=per_prompt, gate=gate)
            z = router.question_z(V[te], S[te]) if router.R is not None else None
            q, c = router.predict_x(X[te], n_chars[te], z)
            ch = np.stack([router.choose_batch(q, c, w) for w in grid])
            res = score_choices(ch, grid, test, train)
            res["train_s"] = time.perf_counter() - t0
            kept = router.manifest.get("per_prompt_kept", {})
            res["kept"] = sum(len(v) for v in kept.values())
            res["kept_of"] = len(router.tasks) * len(router.models)
            per.setdefault(method, []).append(res)
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
        per.setdefault("task_centroid", []).append(
            task_centroid(X, tr, te, train, test, cost_ref, settings, grid))
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
            "quality_max_std": float(np.std([r["quality_max"] for r in rs])),
            "best_single_quality": float(np.mean(
                [r["baselines"]["best_single"]["quality"] for r in rs])),
            "cost_ratio_at_best": float(np.mean(reached)) if reached else None,
            "cost_ratio_reached": f"{len(reached)}/{len(rs)}",
        }
    for method in ("learned", "learned_gated", "learned_ungated"):
        out[method]["kept_terms"] = [f"{r['kept']}/{r['kept_of']}" for r in per[method]]
        out[method]["aiq_minus_knn_tfidf"] = out[method]["aiq"] - out["knn_tfidf"]["aiq"]
        # paired per-fold differences vs the task-level router: the noise that matters
        d = [a["aiq"] - b["aiq"] for a, b in zip(per[method], per["learned_task"], strict=True)]
        out[method]["aiq_minus_task_level"] = float(np.mean(d))
        out[method]["aiq_minus_task_level_std"] = float(np.std(d))
    return out


def latency(dim: int = DEFAULT_DIM, rounds: int = 5, calls: int = 1000) -> dict[str, Any]:
    """predict+choose p50/p99 in microseconds of thread CPU time (see the module doc)."""
    from routecore.routing.learned_model import LearnedRouter

    rng = np.random.default_rng(0)
    tasks, models, k = 13, 11, 11
    arrays: dict[str, Any] = {
        "W": rng.normal(size=(dim, tasks)).astype(np.float32), "b": np.zeros(tasks),
        "q_sum": rng.random((tasks, models)) * 700, "q_cnt": np.full((tasks, models), 770.0),
        "q_prior": rng.random(models), "cost_a": rng.random((tasks, models)) * 1e-4,
        "cost_s": rng.random((tasks, models)) * 1e-8, "cost_floor": np.full(models, 1e-6),
        "B": np.zeros((0, 0), np.float32), "knob_w": np.linspace(0, 1, 101),
        "knob_loglam": np.linspace(10, -10, 101),
        "R": (rng.normal(size=(dim + k, tasks * models)) * 0.1).astype(np.float32),
        "z_mu": np.zeros(k, np.float32), "z_scale": np.full(k, 0.1, np.float32),
    }
    words = ("the quick brown fox jumps over a lazy dog while 42 cats watch what is "
             "answer").split()

    def prose(n: int) -> str:
        return " ".join(rng.choice(words, n))[:n]

    texts = {"own question": prose(2000), "few-shot": prose(1700) + "\n\n" + prose(298)}
    names = (tuple(f"m{i}" for i in range(models)), tuple(f"t{i}" for i in range(tasks)))
    routers = {
        "term kept (all tasks)": LearnedRouter(models=names[0], tasks=names[1], dim=dim,
                                               arrays=arrays, manifest={"cost_ref": 1e-3,
                                                                        "n_train": 10_000}),
        "term dropped (all tasks)": LearnedRouter(models=names[0], tasks=names[1], dim=dim,
                                                  arrays={**arrays, "R": np.zeros((0, 0))},
                                                  manifest={"cost_ref": 1e-3,
                                                            "n_train": 10_000}),
    }
    ok = np.ones(models, dtype=bool)
    out: dict[str, Any] = {}
    for rname, r in routers.items():
        for tname, text in texts.items():
            vec = r.features(text)
            for vname, v in (("vec given", vec), ("no vec", None)):
                best: tuple[float, float] | None = None
                for _ in range(rounds):
                    ts = np.empty(calls)
                    for i in range(calls):
                        t0 = time.thread_time_ns()
                        q, c = r.predict(text, v)
                        r.choose(q, c, (i % 51) / 50, ok)
                        ts[i] = time.thread_time_ns() - t0
                    p50, p99 = (float(x) / 1000 for x in np.percentile(ts, [50, 99]))
                    if best is None or p99 < best[1]:
                        best = (p50, p99)
                assert best is not None
                out[f"{rname}, {tname}, {vname}"] = {"p50_us": round(best[0], 1),
                                                     "p99_us": round(best[1], 1)}
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
    ap.add_argument("--latency", action="store_true",
                    help="predict+choose p50/p99 for a 2,000-char prompt instead of the CV")
    ap.add_argument("--features", action="store_true",
                    help="hashed against static-embedding features (aiq) instead of the full CV")
    ns = ap.parse_args()
    if ns.latency:
        lat = latency(ns.dim)
        if ns.json:
            print(json.dumps({"latency_us": lat}, indent=2))
        else:
            for case, r in lat.items():
                print(f"{case:52s} p50 {r['p50_us']:6.1f} us  p99 {r['p99_us']:6.1f} us")
        return 0
    data_dir = Path(ns.data_dir) if ns.data_dir else default_data_dir(ROOT)
    results: dict[str, Any] = {}
    for name in ns.datasets:
        path = data_dir / f"{name}.train.jsonl"
        if not path.is_file():
            print(f"skip {name}: {path} not found", file=sys.stderr)
            continue
        if ns.features:
            results[name] = cv_features(load_records([path]), ns.folds, ns.seed, ns.dim, ns.settings)
            if not ns.json:
                for method, r in results[name].items():
                    print(f"{name:12s} {method:22s} aiq={r['aiq']:.4f} +- {r['aiq_std']:.4f} "
                          f"quality_max={r['quality_max']:.4f}", flush=True)
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
