"""The shadow runner on the in-process simulated provider: what is judged how, what is not
called, and what a closed runner does."""

from __future__ import annotations

from typing import Any

from conftest_complete import make_config, model, router_for

from routecore.calling.completion import Completer
from routecore.calling.providers import SimEngine
from routecore.calling.shadow import ShadowRunner
from routecore.calling.types import CompletionRequest
from routecore.domain import RouteRequest
from routecore.observe.shadow import ShadowOutcome

MODELS = {
    "cheap": model("cheap", price=(0.1, 0.4), quality=0.8),
    "strong": model("strong", price=(2.0, 8.0), quality=0.95),
    "error_500-judge": model("error_500-judge", price=(0.5, 1.0), quality=0.9),
}
REQ = CompletionRequest(RouteRequest(prompt="Explain how a hash map works."),
                        max_output_tokens=32)


async def _run(shadow: dict[str, Any], n: int = 1) -> tuple[list[ShadowOutcome], SimEngine]:
    engine = SimEngine(None)
    c = Completer(make_config(MODELS, shadow=shadow), router_for("cheap"), sim_engine=engine)
    runner = ShadowRunner()
    seen: list[ShadowOutcome] = []
    runner.on_outcome.append(seen.append)
    c.shadow = runner
    try:
        for _ in range(n):
            await c.complete(REQ)
        await runner.drain()
    finally:
        await runner.aclose()
        await c.aclose()
    return seen, engine


def _calls(engine: SimEngine, model_id: str) -> int:
    state = engine._state.get(model_id)
    return state.calls if state else 0


async def test_shadow_on_the_routed_model_calls_nothing_and_ties() -> None:
    """When the shadow model is the one that answered, nothing more is called: the routed
    answer is scored once and the outcome is a tie at no shadow cost."""
    (o,), engine = await _run({"model": "cheap", "share": 1.0, "max_usd_per_day": 1})
    assert (o.judged_by, o.winner, o.spend_usd) == ("same_model", "tie", 0.0)
    assert o.routed_score == o.shadow_score and _calls(engine, "cheap") == 1


async def test_a_failing_judge_falls_back_to_the_cheap_checks() -> None:
    """A judge that cannot answer leaves both answers to the cheap checks (its failed
    attempts are in the outcome); a passing answer scores its model's registry quality."""
    (o,), engine = await _run({"model": "strong", "judge": "error_500-judge", "share": 1.0,
                               "max_usd_per_day": 1})
    assert o.status == "OK" and o.judged_by == "cheap_checks"
    assert o.judge_model == "error_500-judge" and o.judge_cost_usd == 0
    assert _calls(engine, "error_500-judge") >= 2
    assert any(a[0] == "error_500-judge" and a[3] != "ok" for a in o.attempts)
    assert o.shadow_score in (0.95, 0.0, 0.05, 0.2, 0.3)
    assert o.routed_score in (0.8, 0.0, 0.05, 0.2, 0.3)


async def test_closed_runner_takes_no_more_work() -> None:
    """After aclose, offers are ignored: no evaluation, no upstream call."""
    engine = SimEngine(None)
    c = Completer(make_config(MODELS, shadow={"model": "strong", "share": 1.0,
                                              "max_usd_per_day": 1}),
                  router_for("cheap"), sim_engine=engine)
    runner = ShadowRunner()
    c.shadow = runner
    await runner.aclose()
    r = await c.complete(REQ)
    assert r.model == "cheap" and runner.sampled == 0 and _calls(engine, "strong") == 0
    await c.aclose()
