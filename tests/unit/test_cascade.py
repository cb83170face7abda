"""Cascades (cheap first, escalate on low confidence) and ensembles (best of N in parallel)."""

from __future__ import annotations

import asyncio

import pytest
from conftest_complete import decision, make_config, model, router_for

from routecore.calling import ensemble
from routecore.calling.cascade import cheap_checks, ladder, logprob_confidence, parse_grade
from routecore.calling.completion import Completer
from routecore.calling.providers import ProviderCall, ProviderResponse, SimEngine
from routecore.calling.providers.simulated import REFUSAL, SimulatedProvider
from routecore.calling.types import CompletionRequest
from routecore.domain import Candidate, Constraints, RouteRequest
from routecore.errors import ConfigError, DeadlineExceeded, InvalidRequest

EASY = RouteRequest(prompt="Hello! How are you today?")


def _models() -> dict[str, dict[str, object]]:
    return {
        "refuse-cheap": model("refuse-cheap", price=(0.1, 0.1), quality=0.5),
        "good-cheap": model("good-cheap", price=(0.1, 0.2), quality=0.99),
        "strong": model("strong", price=(5.0, 15.0), quality=0.99),
        "good-b": model("good-b", price=(1.0, 1.0), quality=0.99),
        "error_500-x": model("error_500-x"),
        "judge": model("judge", price=(0.1, 0.1), quality=0.9),
    }


def test_cheap_checks() -> None:
    """Empty, refusal, truncated, hedging and invalid-JSON answers fail the cheap checks."""
    assert cheap_checks("  ", "stop", False) == (0.0, "empty answer")
    assert cheap_checks("I'm sorry, but I can't help with that.", "stop", False)[1] == "refusal"  # type: ignore[index]
    assert cheap_checks("The answer is", "length", False)[1].startswith("truncated")  # type: ignore[index]
    assert cheap_checks("I'm not sure, but maybe 4.", "stop", False)[1] == "hedging"  # type: ignore[index]
    assert cheap_checks('{"a": 1', "stop", True) == (0.0, "invalid JSON")
    assert cheap_checks('{"a": 1}', "stop", True) is None
    assert cheap_checks("Paris.", "stop", False) is None


def test_confidence_signals() -> None:
    """Logprob confidence is exp(mean logprob); judge grades parse to [0, 1]."""
    assert logprob_confidence([0.0, 0.0]) == 1.0
    assert logprob_confidence([-1.0]) == pytest.approx(0.3679, abs=1e-3)
    assert logprob_confidence(None) is None
    assert parse_grade("9") == 0.9 and parse_grade("Score: 12") == 1.0 and parse_grade("?") is None


def test_ladder_cheapest_acceptable_first_then_better() -> None:
    """The ladder is eligible candidates by cost, each of higher predicted quality than the last."""
    cfg = make_config(_models())
    c = Completer(cfg, router_for("strong"))
    cands = (Candidate("strong", "sim", 0.95, 0.01, 10), Candidate("good-b", "sim", 0.8, 0.001, 10),
             Candidate("refuse-cheap", "sim", 0.6, 0.0001, 10),
             Candidate("judge", "sim", 0.99, 0.00001, 10, rejected_reason="too slow"),
             Candidate("good-cheap", "sim", 0.5, 0.0005, 10))
    assert ladder(c, decision("strong", candidates=cands), 3) == ["refuse-cheap", "good-b",
                                                                  "strong"]
    assert ladder(c, decision("strong", candidates=cands), 2) == ["refuse-cheap", "strong"]


async def test_cascade_escalates_past_a_refusal() -> None:
    """A cheap model's refusal scores below the threshold and the next rung answers."""
    c = Completer(make_config(_models()), router_for("strong", ["refuse-cheap"]))
    r = await c.complete(CompletionRequest(EASY, cascade=True))
    assert [s.model for s in r.cascade_steps] == ["refuse-cheap", "strong"]
    assert r.cascade_steps[0].escalated and r.cascade_steps[0].reason.startswith("refusal")
    assert not r.cascade_steps[1].escalated and r.model == "strong"
    assert r.cost_usd == pytest.approx(sum(s.cost_usd for s in r.cascade_steps))
    await c.aclose()


async def test_cascade_keeps_a_confident_cheap_answer() -> None:
    """A confident cheap answer is returned and the expensive model is never called."""
    c = Completer(make_config(_models()), router_for("strong", ["good-cheap"]))
    r = await c.complete(CompletionRequest(EASY, cascade=True))
    assert r.model == "good-cheap" and len(r.cascade_steps) == 1
    assert not r.cascade_steps[0].escalated and "logprobs" in r.cascade_steps[0].reason
    assert {a.model for a in r.attempts} == {"good-cheap"}
    await c.aclose()


async def test_request_threshold_overrides_config_and_judge_is_billed() -> None:
    """cascade_threshold per request beats cascade.threshold; the judge's grade and cost count."""
    cfg = make_config(_models(), cascade={"threshold": 0.1, "judge_model": "judge"})
    c = Completer(cfg, router_for("strong", ["good-cheap"]))
    low = await c.complete(CompletionRequest(EASY, cascade=True))
    assert low.model == "good-cheap" and "judge 0.90" in low.cascade_steps[0].reason
    assert any(a.model == "judge" for a in low.attempts)
    high = await c.complete(CompletionRequest(EASY, cascade=True, cascade_threshold=0.999))
    assert high.model == "strong" and high.cascade_steps[0].escalated
    assert high.usage.input_tokens > low.usage.input_tokens  # every call is billed
    with pytest.raises(InvalidRequest):
        await c.complete(CompletionRequest(EASY, cascade=True, cascade_threshold=-0.5))
    await c.aclose()


async def test_cascade_enabled_by_config() -> None:
    """cascade.enabled turns the cascade on without the request asking."""
    cfg = make_config(_models(), cascade={"enabled": True})
    c = Completer(cfg, router_for("strong", ["refuse-cheap"]))
    r = await c.complete(CompletionRequest(EASY))
    assert len(r.cascade_steps) == 2
    await c.aclose()


async def test_ensemble_picks_the_agreeing_answer() -> None:
    """By agreement, a refusal loses to two agreeing answers; a failed member is tolerated."""
    c = Completer(make_config(_models()),
                  router_for("refuse-cheap", ["error_500-x", "good-b", "good-cheap"]))
    r = await c.complete(CompletionRequest(EASY, ensemble_size=4))
    assert r.model == "good-b"
    chosen = [s for s in r.cascade_steps if "chosen (" in s.reason and "not" not in s.reason]
    assert [s.model for s in chosen] == ["good-b"]
    assert any(s.model == "error_500-x" and "failed" in s.reason for s in r.cascade_steps)
    assert r.cost_usd == pytest.approx(sum(s.cost_usd for s in r.cascade_steps))
    await c.aclose()


async def test_ensemble_by_judge() -> None:
    """With selection judge, the answer the judge grades highest wins."""
    cfg = make_config(_models(), ensemble={"selection": "judge", "judge_model": "judge"})
    c = Completer(cfg, router_for("refuse-cheap", ["strong"]))
    r = await c.complete(CompletionRequest(EASY, ensemble_size=2))
    assert r.model == "strong"
    assert sum(a.model == "judge" for a in r.attempts) == 2
    await c.aclose()


async def test_judge_outside_the_callers_allow_list_is_never_called_or_billed() -> None:
    """A caller limited to some models is not billed for a judge outside them."""
    cfg = make_config(_models(), cascade={"threshold": 0.1, "judge_model": "judge"},
                      ensemble={"selection": "judge", "judge_model": "judge"})
    limited = RouteRequest(prompt=EASY.prompt, constraints=Constraints(
        allow_models=frozenset({"good-cheap", "strong", "refuse-cheap"})))
    c = Completer(cfg, router_for("strong", ["good-cheap"]))
    r = await c.complete(CompletionRequest(limited, cascade=True))
    assert not any(a.model == "judge" for a in r.attempts)
    assert "judge judge not asked: outside allow_models" in r.cascade_steps[0].reason
    c2 = Completer(cfg, router_for("refuse-cheap", ["strong"]))
    e = await c2.complete(CompletionRequest(limited, ensemble_size=2))
    assert not any(a.model == "judge" for a in e.attempts)
    assert any("outside allow_models" in s.reason for s in e.cascade_steps)
    assert e.cost_usd == pytest.approx(sum(s.cost_usd for s in e.cascade_steps))
    await c.aclose()
    await c2.aclose()


def test_cascade_and_ensemble_config_errors_name_exact_paths() -> None:
    """Bad cascade/ensemble settings fail at startup with the exact path."""
    with pytest.raises(ConfigError) as err:
        Completer(make_config(_models(), cascade={"threshold": 1.5, "judge_model": "nope"},
                              ensemble={"selection": "judge", "size": 1}), router_for("strong"))
    p = err.value.problems
    assert "cascade.threshold: must be <= 1" in p
    assert "cascade.judge_model: unknown model 'nope'" in p
    assert "ensemble.size: must be >= 2" in p
    assert "ensemble.judge_model: is required when selection is judge" in p


async def test_ensemble_judge_failure_cancels_the_other_judges(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """When one judge call fails (here: the deadline), the other judge calls are cancelled and
    awaited, not left running after the request has failed."""
    cancelled: list[str] = []

    async def judge(_c: object, _j: str, _r: object, _d: object, answer: str, *_a: object,
                    ) -> tuple[float | None, None]:
        if answer == REFUSAL:
            raise DeadlineExceeded("deadline exceeded during the judge")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(answer)
            raise
        return 1.0, None

    monkeypatch.setattr(ensemble, "judge", judge)
    cfg = make_config(_models(), ensemble={"selection": "judge", "judge_model": "judge"})
    c = Completer(cfg, router_for("strong", ["refuse-cheap", "good-b"]))
    with pytest.raises(DeadlineExceeded):
        await asyncio.wait_for(c.complete(CompletionRequest(EASY, ensemble_size=3)), 5)
    assert len(cancelled) == 2
    assert asyncio.all_tasks() == {asyncio.current_task()}
    await c.aclose()


class _Broken(SimulatedProvider):
    """A provider with a bug: every call raises a plain RuntimeError."""

    async def complete(self, call: ProviderCall, timeout: float) -> ProviderResponse:
        raise RuntimeError("provider bug")


async def test_ensemble_member_failure_cancels_the_other_members() -> None:
    """A member failing with an unexpected error fails the ensemble at once, and the slower
    members are cancelled rather than left calling their upstreams."""
    models = {**_models(), "slow_3000": model("slow_3000"), "bug": model("bug", endpoint="bug")}
    cfg = make_config(models, endpoints={"sim": {"kind": "simulated", "timeout_s": 5},
                                         "bug": {"kind": "simulated", "timeout_s": 5}})
    c = Completer(cfg, router_for("slow_3000", ["bug"]))
    c.providers["bug"] = _Broken(cfg.endpoints["bug"], SimEngine(cfg))
    t0 = asyncio.get_running_loop().time()
    with pytest.raises(RuntimeError, match="provider bug"):
        await c.complete(CompletionRequest(EASY, ensemble_size=2))
    assert asyncio.get_running_loop().time() - t0 < 1.0
    assert asyncio.all_tasks() == {asyncio.current_task()}
    await c.aclose()
