"""Budget pacing in the router: past pacing.start the choice slides toward cheaper models."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from routecore import Router
from routecore.domain import BudgetState

PROMPT = "Prove that the square root of 2 is irrational, step by step, rigorously."


@pytest.fixture
def router(default_router: Router) -> Router:
    return default_router


def _state(pacing: float) -> BudgetState:
    return BudgetState(share_used=0.8 + 0.2 * pacing, remaining_usd=1.0 - pacing,
                       cap="tenant 'acme' usd_per_day", pacing=pacing)


@pytest.mark.parametrize("strategy", ["quality", "multi_objective", "complexity"])
def test_cost_falls_smoothly_to_the_cheapest(router: Router, strategy: str) -> None:
    """As pacing rises the chosen model never gets dearer, and at 1 it is the cheapest eligible."""
    router.budget_source = None
    free = router.route(PROMPT, strategy=strategy)
    assert free.budget is None and "pacing" not in free.reason
    cheapest = min(c.estimated_cost_usd for c in free.candidates if not c.rejected_reason)
    costs = []
    try:
        for p in [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]:
            router.budget_source = lambda t, u, k, p=p: _state(p)  # type: ignore[misc]
            d = router.route(PROMPT, strategy=strategy, tenant="acme")
            costs.append(d.estimated_cost_usd)
            assert d.budget == _state(p)
            assert ("budget pacing" in d.reason) == (p > 0)
    finally:
        router.budget_source = None
    assert costs[0] == free.estimated_cost_usd
    assert costs == sorted(costs, reverse=True) and costs[-1] == cheapest
    assert len(set(costs)) > 2  # a slide, not a cliff


def test_paced_out_models_say_why(router: Router) -> None:
    """A model set aside by pacing carries the ceiling in its rejection reason."""
    router.budget_source = lambda t, u, k: _state(0.9)
    try:
        d = router.route(PROMPT, strategy="quality", tenant="acme")
    finally:
        router.budget_source = None
    assert "tenant 'acme' usd_per_day at 98%" in d.reason
    paced = [c for c in d.candidates if c.rejected_reason.startswith("budget pacing")]
    assert paced and all(c.estimated_cost_usd > d.estimated_cost_usd for c in paced)


class _BestQuality:
    """A learned router that always picks the highest predicted quality it may."""

    def __init__(self, models: tuple[str, ...]) -> None:
        self.models = models

    def predict(self, text: str, vec: Any) -> tuple[Any, Any]:
        n = len(self.models)
        return np.linspace(0.5, 0.95, n), np.linspace(0.001, 0.01, n)

    def choose(self, quality: Any, cost: Any, willingness_to_pay: float, eligible: Any) -> int:
        return int(np.argmax(np.where(eligible, quality, -1.0)))

    def learn(self, text: str, model: str, score: float) -> None:
        return None


def test_learned_strategy_is_paced_too(default_router: Router) -> None:
    """The learned router chooses only among models under the pacing ceiling."""
    config = default_router.config
    router = Router(config, learned=_BestQuality(tuple(config.models)))
    free = router.route(PROMPT, strategy="learned")
    router.budget_source = lambda t, u, k: _state(1.0)
    paced = router.route(PROMPT, strategy="learned", tenant="acme")
    assert "budget pacing" in paced.reason
    eligible = [c.estimated_cost_usd for c in free.candidates if not c.rejected_reason]
    assert paced.estimated_cost_usd == min(eligible) < free.estimated_cost_usd
