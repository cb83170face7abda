"""Unit tests of LearnedRouter: training, the knob, persistence, online learning, gating.

Speed is measured in bench/learned.py --latency, never asserted here.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from routecore.learned.data import Dataset
from routecore.learned.train import fit_question_model, train_dataset
from routecore.routing.learned_model import LearnedRouter

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


def test_per_prompt_term_round_trips_and_old_artifacts_load(tmp_path: Path) -> None:
    """R is saved and reloaded; an artifact without it (older format) still loads, task-level."""
    assert train_dataset(synthetic(), dim=256).R is None  # the shipped default: task level
    r = train_dataset(synthetic(), dim=256, per_prompt=True, gate=False)
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


def test_per_prompt_term_round_trips_when_kept(tmp_path: Path) -> None:
    """An ungated per-prompt term survives save/load and agrees across predict paths."""
    r = train_dataset(synthetic(), dim=256, per_prompt=True, gate=False)
    assert r.R is not None and r.R.shape == (256 + len(r.z_mu), len(r.tasks) * len(MODELS))
    r.save(tmp_path / "art")
    again = LearnedRouter.load(tmp_path / "art")
    for text in ("Examples first.\n\nWrite a python function def h(x): return the sorted list",
                 "Write a python function def h(x): return the sorted list"):
        np.testing.assert_allclose(again.predict(text, None)[0], r.predict(text, None)[0])
        x = r.features(text)
        # a passed vector is reused for a prompt that is its own final question
        np.testing.assert_allclose(r.predict(text, x)[0], r.predict(text, None)[0], atol=1e-6)
        np.testing.assert_allclose(r.predict(text, None)[0],
                                   r.predict_x(x, float(len(text)), r.question_features(text))[0],
                                   atol=1e-6)


def _signal_data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two tasks: in task 0 a feature decides model 1's score; in task 1 scores are noise."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 8)).astype(np.float32)
    y = np.arange(n) % 2
    scores = (rng.random((n, 2)) < 0.5).astype(np.float64)
    t0 = y == 0
    scores[t0, 1] = (Z[t0, 0] > 0).astype(np.float64)
    return Z, y, scores


def test_gate_keeps_the_term_only_where_it_predicts() -> None:
    """The inner CV keeps (task 0, model 1), whose score a feature decides, and drops
    pure-noise columns; their weights are zero."""
    Z, y, scores = _signal_data()
    Q = np.full((2, 2), 0.5)
    R, kept = fit_question_model(Z, y, 2, scores, Q, l2=1.0, prior=np.full(2, 0.5))
    assert kept[0, 1] and not kept[1].any()
    assert np.any(R[:, 1]) and not np.any(R[:, 2:])
    _, all_kept = fit_question_model(Z, y, 2, scores, Q, l2=1.0, gate=False)
    assert all_kept.all()


def test_predict_skips_question_features_when_no_likely_task_kept_a_term() -> None:
    """Without a kept term for the prompt's likely tasks, predict never extracts the
    final question; with one, it does (once) for a few-shot prompt."""
    r = train_dataset(synthetic(), dim=256, per_prompt=True, gate=False)
    assert r.R is not None
    calls: list[str] = []
    fz = r.featurizer
    real = fz.question

    def counting(text: str) -> tuple[np.ndarray, np.ndarray]:
        calls.append(text)
        return real(text)

    fz.question = counting  # type: ignore[method-assign]
    text = "Examples first.\n\nWrite a python function def h(x): return the sorted list"
    r.predict(text, None)
    assert len(calls) == 1
    r._task_on[:] = False  # as if the gate had dropped every task's term
    q_off, _ = r.predict(text, None)
    assert len(calls) == 1
    np.testing.assert_allclose(q_off, r.predict_x(r.features(text), float(len(text)))[0])
