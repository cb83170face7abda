"""The Router's Python API, strategies and constraints (the same path as the RPC)."""

from __future__ import annotations

import pytest

from routecore import Constraints, Message, Router, Weights
from routecore.errors import InvalidRequest, NoModelAvailable, UnknownModel

PROOF = ("Prove step by step that there are infinitely many primes of the form 4k+3, "
         "justifying each lemma rigorously.")
CODE = "Write a Python function that parses an ISO 8601 date string and add unit tests.\n```python\n"


def _cand(d, model):  # type: ignore[no-untyped-def]
    return next(c for c in d.candidates if c.model == model)


def test_python_api_prompt_and_messages(default_router: Router) -> None:
    """route() takes a prompt, or messages as Message objects or dicts."""
    q = "Solve for x: 3x + 7 = 22."
    a = default_router.route(q)
    b = default_router.route(messages=[{"role": "user", "content": q}])
    c = default_router.route(messages=[Message("system", "Be brief."), Message("user", q)])
    assert a.category == b.category == c.category == "math"
    assert b.input_tokens > a.input_tokens  # chat overhead is counted
    assert len(a.candidates) == len(default_router.registry)


def test_easy_is_cheaper_than_hard(default_router: Router) -> None:
    """An easy question costs less than a proof or a code request, and is less complex."""
    easy, proof, code = (default_router.route(p) for p in ("What is 2+2?", PROOF, CODE))
    assert easy.estimated_cost_usd < proof.estimated_cost_usd
    assert easy.estimated_cost_usd < code.estimated_cost_usd
    assert easy.complexity < proof.complexity
    assert code.category == "code"


def test_quality_strategy_picks_highest_predicted_quality(default_router: Router) -> None:
    """Strategy quality picks the eligible candidate with the highest predicted quality."""
    d = default_router.route(PROOF, strategy="quality")
    assert d.predicted_quality == max(c.predicted_quality for c in d.candidates)


def test_cost_strategy_is_cheapest_within_tolerance(default_router: Router) -> None:
    """Strategy cost picks the cheapest model meeting min_quality."""
    d = default_router.route(PROOF, strategy="cost", constraints=Constraints(min_quality=0.8))
    ok = [c for c in d.candidates if not c.rejected_reason]
    assert all(c.predicted_quality >= 0.8 for c in ok)
    assert d.estimated_cost_usd == min(c.estimated_cost_usd for c in ok)


def test_latency_strategy_is_fastest_meeting_quality(default_router: Router) -> None:
    """Strategy latency picks the fastest model meeting min_quality."""
    d = default_router.route("Translate 'good morning' into French.", strategy="latency",
                             constraints=Constraints(min_quality=0.7))
    ok = [c for c in d.candidates if not c.rejected_reason]
    assert d.estimated_latency_ms == min(c.estimated_latency_ms for c in ok)


def test_complexity_strategy_uses_tiers(default_router: Router) -> None:
    """Strategy complexity sends easy prompts to the first tier and hard ones to the top tier."""
    tiers = default_router.config.routing.complexity_tiers
    assert default_router.route("Hello!", strategy="complexity").model in tiers[0].models
    assert default_router.route(PROOF + " " + PROOF, strategy="complexity").model in tiers[-1].models


def test_domain_strategy_uses_category_preferences(default_router: Router) -> None:
    """Strategy domain sends code to the configured code model."""
    d = default_router.route(CODE, strategy="domain")
    assert d.model == default_router.config.routing.domains["code"][0]


def test_multi_objective_drops_pareto_dominated(default_router: Router) -> None:
    """Multi-objective rejects dominated candidates, naming the dominating model."""
    d = default_router.route("Summarize this paragraph.", strategy="multi_objective")
    dominated = [c for c in d.candidates if c.rejected_reason.startswith("pareto-dominated by ")]
    assert dominated
    by_name = {c.model: c for c in d.candidates}
    for c in dominated:
        a = by_name[c.rejected_reason.removeprefix("pareto-dominated by ")]
        assert a.predicted_quality >= c.predicted_quality
        assert a.estimated_cost_usd <= c.estimated_cost_usd
        assert a.estimated_latency_ms <= c.estimated_latency_ms


def test_weights_shift_the_choice(default_router: Router) -> None:
    """Raising the cost weight never picks a pricier model."""
    cheap = default_router.route(PROOF, weights=Weights(quality=1, cost=5, latency=0))
    rich = default_router.route(PROOF, weights=Weights(quality=1, cost=0.01, latency=0))
    assert cheap.estimated_cost_usd <= rich.estimated_cost_usd
    assert rich.predicted_quality >= cheap.predicted_quality


def test_constraints_reject_with_reasons(default_router: Router) -> None:
    """Latency, quality, capability and context limits each reject with a reason."""
    d = default_router.route(PROOF, constraints=Constraints(max_latency_ms=3000, min_quality=0.5,
                                                             required_capabilities=frozenset({"vision"})))
    reasons = {c.model: c.rejected_reason for c in d.candidates}
    assert reasons["deepseek-v4-pro"].startswith(("lacks capability: vision", "estimated p95 latency"))
    assert reasons["codestral"] == "lacks capability: vision"
    assert reasons["gpt-5"].startswith("estimated p95 latency")
    assert _cand(d, d.model).estimated_latency_ms <= 3000


def test_context_fit(default_router: Router) -> None:
    """A prompt plus max output beyond a model's window or output limit rejects that model."""
    d = default_router.route("Write a long story.", constraints=Constraints(max_output_tokens=70000))
    reasons = {c.model: c.rejected_reason for c in d.candidates}
    assert reasons["gpt-4o"] == "max output 70000 tokens > model limit 16384"
    assert reasons["gpt-5"] == "" or reasons["gpt-5"].startswith("pareto")
    long_text = "lorem ipsum dolor sit amet " * 30000  # ~150k tokens
    d = default_router.route(long_text)
    reasons = {c.model: c.rejected_reason for c in d.candidates}
    assert reasons["gpt-4o"].startswith("context: ")
    assert d.model not in ("gpt-4o", "gpt-4o-mini", "codestral")


def test_fallbacks_are_eligible_and_exclude_choice(default_router: Router) -> None:
    """Fallbacks are distinct eligible models, not the chosen one, at most max_fallbacks."""
    d = default_router.route(CODE, constraints=Constraints(deny_models=frozenset({"claude-sonnet-4"})))
    assert d.model not in d.fallbacks and "claude-sonnet-4" not in d.fallbacks
    assert len(d.fallbacks) == len(set(d.fallbacks)) <= default_router.config.routing.max_fallbacks
    for f in d.fallbacks:
        r = _cand(d, f).rejected_reason
        assert r == "" or r.startswith("pareto")


def test_unhealthy_models_are_skipped(default_router: Router) -> None:
    """A model reported unhealthy by the health source is rejected with its reason."""
    first = default_router.route(CODE).model
    router = Router(default_router.config)
    router.health_source = lambda: {first: "circuit open"}
    d = router.route(CODE)
    assert d.model != first and _cand(d, first).rejected_reason == "unhealthy: circuit open"


@pytest.mark.parametrize(("kwargs", "exc", "needle"), [
    ({"request": ""}, InvalidRequest, "prompt: must not be empty"),
    ({"request": "hi", "constraints": Constraints(max_latency_ms=-5)}, InvalidRequest,
     "constraints.max_latency_ms: must be >= 0"),
    ({"request": "hi", "constraints": Constraints(min_quality=2)}, InvalidRequest, "must be <= 1"),
    ({"request": "hi", "constraints": Constraints(deny_models=frozenset({"x"}))}, UnknownModel,
     "constraints.deny_models: unknown model(s) 'x'"),
    ({"request": "hi", "strategy": "learned"}, InvalidRequest, "needs a trained router"),
    ({"request": "hi", "willingness_to_pay": 1.5}, InvalidRequest, "willingness_to_pay"),
    ({"request": "hi", "weights": Weights(quality=-1)}, InvalidRequest, "weights.quality"),
    ({"request": "hi", "constraints": Constraints(max_cost_usd=1e-15)}, NoModelAvailable,
     "no model satisfies"),
])
def test_invalid_requests(default_router: Router, kwargs: dict, exc: type, needle: str) -> None:  # type: ignore[type-arg]
    """Invalid requests raise the taxonomy's error with a message naming the field."""
    with pytest.raises(exc) as info:
        default_router.route(**kwargs)
    assert needle in str(info.value)


def test_no_model_available_lists_every_reason(default_router: Router) -> None:
    """NoModelAvailable carries each model's rejection reason."""
    with pytest.raises(NoModelAvailable) as info:
        default_router.route("hi", constraints=Constraints(allow_models=frozenset({"codestral"}),
                                                           required_capabilities=frozenset({"vision"})))
    assert info.value.reasons["codestral"] == "lacks capability: vision"
    assert info.value.reasons["gpt-4o"] == "not in allow_models"


def test_classifier_modes(default_router: Router) -> None:
    """Rule-only and embedding-only classifiers both recognise an obvious code prompt."""
    from dataclasses import replace

    for mode in ("rule", "embedding"):
        cfg = replace(default_router.config, classifier=replace(default_router.config.classifier,
                                                                mode=mode))
        d = Router(cfg).route("Fix this bug in my JavaScript function: TypeError undefined")
        assert d.category == "code", mode
        assert 0 <= d.category_confidence <= 1
