"""Unit tests of LearnedRouter: training, the knob, persistence, online learning, latency."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest

from routecore.learned.data import Dataset
from routecore.learned.model import LearnedRouter
from routecore.learned.train import train_dataset

MODELS = ("big", "mid", "small")


def synthetic(n: int = 120, seed: int = 0) -> Dataset:
    """Two task families: `small` is as good as `big` on trivia, useless on code."""
    rng = np.random.default_rng(seed)
    prompts, sources, scores, costs = [], [], [], []
    for i in range(n):
        if i % 2:
            prompts.append(f"Write a python function def f{i}(x): return the sorted list {i}")
            sources.append("code")
            q = [0.9, 0.6, 0.1]
        else:
            prompts.append(f"Who was the capital city president of country number {i}?")
            sources.append("trivia")
            q = [0.8, 0.8, 0.8]
        scores.append([float(rng.random() < p) for p in q])
        costs.append([1e-3, 3e-4, 1e-4])
    return Dataset(ids=tuple(f"r{i}" for i in range(n)), prompts=tuple(prompts),
                   sources=tuple(sources), models=MODELS, scores=np.array(scores),
                   costs=np.array(costs))


@pytest.fixture(scope="module")
def router() -> LearnedRouter:
    return train_dataset(synthetic(), dim=256)


def test_predicts_per_task_quality_and_cost(router: LearnedRouter) -> None:
    """The trained router tells the task families apart and knows each model's quality."""
    q, c = router.predict("Write a python function def g(x): return the sorted list", None)
    assert q.shape == c.shape == (3,)
    assert q[0] > q[2] + 0.4
    q2, _ = router.predict("Who was the capital city president of country number 7?", None)
    assert abs(q2[0] - q2[2]) < 0.25
    assert c[0] == pytest.approx(1e-3, rel=0.05)


def test_knob_spans_cheapest_to_best(router: LearnedRouter) -> None:
    """willingness_to_pay 0 picks the cheapest model and 1 the best predicted quality."""
    q, c = router.predict("Write a python function def g(x): return the sorted list", None)
    ok = np.ones(3, dtype=bool)
    assert router.choose(q, c, 0.0, ok) == 2
    assert router.choose(q, c, 1.0, ok) == 0
    picks = [router.choose(q, c, w / 50, ok) for w in range(51)]
    assert all(c[a] <= c[b] for a, b in itertools.pairwise(picks))


def test_choose_respects_eligibility(router: LearnedRouter) -> None:
    """An ineligible model is never chosen, even when it is the best."""
    q, c = router.predict("Write a python function def g(x): return the sorted list", None)
    assert router.choose(q, c, 1.0, np.array([False, True, True])) == 1


def test_save_load_round_trip(router: LearnedRouter, tmp_path: Path) -> None:
    """A saved artifact reloads with the same models, manifest and predictions."""
    router.save(tmp_path / "art")
    again = LearnedRouter.load(tmp_path / "art")
    assert again.models == MODELS and again.manifest["feature_dim"] == 256
    text = "Who was the capital city president of country number 9?"
    np.testing.assert_allclose(again.predict(text, None)[0], router.predict(text, None)[0])


def test_learn_shifts_quality_without_restart(tmp_path: Path) -> None:
    """Online outcomes join the per-task statistics and change the next prediction."""
    r = train_dataset(synthetic(40), dim=256)
    text = "Who was the capital city president of country number 3?"
    before = r.predict(text, None)[0][2]
    for _ in range(30):
        r.learn(text, "small", 0.0)
    assert r.predict(text, None)[0][2] < before - 0.2
    with pytest.raises(Exception, match="unknown model"):
        r.learn(text, "nope", 1.0)


def test_predict_choose_p99_under_200us() -> None:
    """predict+choose with a precomputed vector takes under 200 us p99 of CPU time at dim 4096."""
    rng = np.random.default_rng(0)
    dim, tasks, models = 4096, 13, 11
    arrays = {
        "W": rng.normal(size=(dim, tasks)).astype(np.float32), "b": np.zeros(tasks),
        "q_sum": rng.random((tasks, models)) * 700, "q_cnt": np.full((tasks, models), 770.0),
        "q_prior": rng.random(models), "cost_a": rng.random((tasks, models)) * 1e-4,
        "cost_s": rng.random((tasks, models)) * 1e-8, "cost_floor": np.full(models, 1e-6),
        "B": np.zeros((0, 0), np.float32), "knob_w": np.linspace(0, 1, 101),
        "knob_loglam": np.linspace(10, -10, 101),
    }
    r = LearnedRouter(models=tuple(f"m{i}" for i in range(models)),
                      tasks=tuple(f"t{i}" for i in range(tasks)), dim=dim, arrays=arrays,
                      manifest={"cost_ref": 1e-3, "n_train": 10_000})
    vec = rng.normal(size=dim).astype(np.float32)
    vec /= np.linalg.norm(vec)
    text = "x" * 2000
    ok = np.ones(models, dtype=bool)
    # Thread CPU time, so a shared, loaded 2-core box's preemptions do not count as work;
    # the quietest of several rounds of 1,000 calls.
    rounds = []
    for _ in range(5):
        times = []
        for i in range(1000):
            t0 = time.thread_time_ns()
            q, c = r.predict(text, vec)
            r.choose(q, c, (i % 51) / 50, ok)
            times.append(time.thread_time_ns() - t0)
        rounds.append(float(np.percentile(times, 99)) / 1000)
    assert min(rounds) < 200, f"p99 per round (us): {rounds}"


def test_per_prompt_term_round_trips_and_old_artifacts_load(tmp_path: Path) -> None:
    """R is saved and reloaded; an artifact without it (older format) still loads, task-level."""
    r = train_dataset(synthetic(), dim=256)
    assert r.R is not None and r.R.shape == (256 + len(r.z_mu), len(r.tasks) * len(MODELS))
    r.save(tmp_path / "art")
    text = "Examples first.\n\nWrite a python function def h(x): return the sorted list"
    again = LearnedRouter.load(tmp_path / "art")
    np.testing.assert_allclose(again.predict(text, None)[0], r.predict(text, None)[0])
    for name in ("R", "z_mu", "z_scale"):
        (tmp_path / "art" / f"{name}.npy").unlink()
    old = LearnedRouter.load(tmp_path / "art")
    assert old.R is None
    q, _ = old.predict(text, None)
    assert q.shape == (3,)
    # batch and single-prompt paths agree
    x = r.features(text)
    z = r.question_features(text)
    qb, cb = r.predict_x(x[None, :], np.array([float(len(text))]), z[None, :])
    q1, c1 = r.predict_x(x, float(len(text)), z)
    np.testing.assert_allclose(qb[0], q1, atol=1e-6)
    np.testing.assert_allclose(cb[0], c1)


def test_per_prompt_predict_p99_under_200us() -> None:
    """With per-prompt weights (13 tasks x 11 models, dim 4096) the model part stays fast."""
    rng = np.random.default_rng(1)
    dim, tasks, models, k = 4096, 13, 11, 11
    arrays = {
        "W": rng.normal(size=(dim, tasks)).astype(np.float32), "b": np.zeros(tasks),
        "q_sum": rng.random((tasks, models)) * 700, "q_cnt": np.full((tasks, models), 770.0),
        "q_prior": rng.random(models), "cost_a": rng.random((tasks, models)) * 1e-4,
        "cost_s": rng.random((tasks, models)) * 1e-8, "cost_floor": np.full(models, 1e-6),
        "B": np.zeros((0, 0), np.float32), "knob_w": np.linspace(0, 1, 101),
        "knob_loglam": np.linspace(10, -10, 101),
        "R": (rng.normal(size=(dim + k, tasks * models)) * 0.1).astype(np.float32),
        "z_mu": np.zeros(k, np.float32), "z_scale": np.full(k, 0.1, np.float32),
    }
    r = LearnedRouter(models=tuple(f"m{i}" for i in range(models)),
                      tasks=tuple(f"t{i}" for i in range(tasks)), dim=dim, arrays=arrays,
                      manifest={"cost_ref": 1e-3, "n_train": 10_000})
    vec = rng.normal(size=dim).astype(np.float32)
    vec /= np.linalg.norm(vec)
    z = r.question_features("few-shot examples\n\n" + "y " * 150)  # feature extraction: excluded
    ok = np.ones(models, dtype=bool)
    rounds = []
    for _ in range(5):
        times = []
        for i in range(1000):
            t0 = time.thread_time_ns()
            q, c = r.predict_x(vec, 2000.0, z)
            r.choose(q, c, (i % 51) / 50, ok)
            times.append(time.thread_time_ns() - t0)
        rounds.append(float(np.percentile(times, 99)) / 1000)
    assert min(rounds) < 200, f"p99 per round (us): {rounds}"
