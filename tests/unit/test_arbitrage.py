"""Provider arbitrage: the cheapest healthy deployment within the constraints, and its config."""

from __future__ import annotations

from typing import Any

import pytest
from conftest_complete import make_config, model

from routecore import Router
from routecore.calling.completion import Completer
from routecore.calling.types import CompletionRequest
from routecore.config import Config
from routecore.domain import Constraints, RouteRequest
from routecore.errors import ConfigError, ResourceExhausted
from routecore.routing.arbitrage import rank

EPS = {n: {"kind": "simulated", "timeout_s": 5} for n in ("groq", "together", "azure", "sim")}


def _dep(name: str, inp: float, out: float, p95: float = 500.0, **extra: Any) -> dict[str, Any]:
    return {"endpoint": name, "model_id": f"llama-{name}", "provider": name,
            "price": {"input": inp, "output": out, **extra.pop("price", {})},
            "latency": {"p50_ms": p95 / 2, "p95_ms": p95, "tokens_per_s": 1000}, **extra}


def _config(deps: list[dict[str, Any]], **kw: Any) -> Config:
    m = model("llama", endpoint="groq", price=(0.5, 0.5), deployments=deps)
    m["latency"] = {"p50_ms": 100, "p95_ms": 300, "tokens_per_s": 1000}
    return make_config({"llama": m}, endpoints=EPS, **kw)


THREE = [_dep("azure", 0.30, 0.30), _dep("together", 0.20, 0.20), _dep("groq", 0.59, 0.79)]


def test_cheapest_deployment_first_and_named_with_the_others() -> None:
    """Three sellers of one model: the cheapest is first, then by price; the why names both."""
    r = rank(_config(THREE).models["llama"], 1000, 1000)
    assert [o.deployment.name for o in r.options()] == ["together", "azure", "groq"]
    assert r.first.provider == "together"
    assert r.first.cost_usd == pytest.approx(2000 * 0.20 / 1e6)
    assert r.reason.startswith("deployment together (cheapest healthy: $0.20/Mtok vs azure $0.30")


def test_latency_constraint_uses_p95_and_leaves_slow_ones_out() -> None:
    """A cheap deployment whose p95 is over max_latency_ms loses to a dearer one that meets it."""
    deps = [_dep("together", 0.20, 0.20, p95=1500), _dep("azure", 0.30, 0.30, p95=600),
            _dep("groq", 0.59, 0.79, p95=300)]
    r = rank(_config(deps).models["llama"], 100, 512, max_latency_ms=800)
    assert [o.deployment.name for o in r.options()] == ["azure", "groq"]
    assert "deployment azure (cheapest healthy meeting 800 ms p95" in r.reason
    assert "together p95 1505 ms > 800 ms (left out)" in r.reason
    # None meets 100 ms: the fastest healthy one first.
    fast = rank(_config(deps).models["llama"], 100, 512, max_latency_ms=100)
    assert fast.first.deployment.name == "groq" and "none meets 100 ms p95" in fast.reason


def test_tiered_price_past_the_threshold_changes_the_cheapest() -> None:
    """Below 200k input tokens the tiered seller is cheaper; past it, its tier rate loses."""
    deps = [_dep("together", 0.20, 0.20,
                 price={"tiers": [{"above_input_tokens": 200_000, "input": 0.60, "output": 0.60},
                                  {"above_input_tokens": 500_000, "input": 1.2, "output": 1.2}]}),
            _dep("azure", 0.30, 0.30)]
    spec = _config(deps).models["llama"]
    assert rank(spec, 199_000, 100).first.deployment.name == "together"
    past = rank(spec, 250_000, 100)
    assert past.first.deployment.name == "azure"
    assert past.options()[1].cost_usd == pytest.approx(250_100 * 0.60 / 1e6)
    assert rank(spec, 600_000, 100).options()[1].cost_usd == pytest.approx(600_100 * 1.2 / 1e6)


def test_unhealthy_deployment_is_tried_last() -> None:
    """An open breaker moves the cheapest seller behind the healthy ones, and the why says so."""
    sick = {"together/llama-together": "circuit open"}
    r = rank(_config(THREE).models["llama"], 1000, 1000, health=lambda k: sick.get(k, ""))
    assert [o.deployment.name for o in r.options()] == ["azure", "groq", "together"]
    assert "together circuit open (tried last)" in r.reason


def test_all_unhealthy_keeps_price_order() -> None:
    """Every deployment at its limit: all are kept, cheapest first, and the why says none is
    healthy (the call path re-checks each one's limits)."""
    r = rank(_config(THREE).models["llama"], 1000, 1000, health=lambda k: "at its rate limit")
    assert [o.deployment.name for o in r.options()] == ["together", "azure", "groq"]
    assert r.reason.startswith("deployment together (no healthy deployment; cheapest of the rest")


def test_equal_prices_form_one_group_shared_by_weight() -> None:
    """Equally priced deployments are one group (weights share it); a dearer one follows."""
    deps = [_dep("azure", 0.30, 0.30, weight=0.9), _dep("together", 0.30, 0.30, weight=0.1),
            _dep("groq", 0.59, 0.79)]
    r = rank(_config(deps).models["llama"], 1000, 1000)
    assert [[o.deployment.name for o in g] for g in r.groups] == [["azure", "together"], ["groq"]]
    assert "tied on price with together: shared by weight" in r.reason


def test_route_names_the_deployment_and_its_cost() -> None:
    """Route's decision carries the chosen deployment, its provider, the failover order and the
    estimated cost at that deployment's price (not the model's list price)."""
    router = Router.from_config(_config(THREE))
    d = router.route("Summarize the key points of this meeting.",
                     constraints=Constraints(max_output_tokens=100))
    assert (d.model, d.deployment, d.provider) == ("llama", "together", "together")
    assert d.deployment_order == ("together", "azure", "groq")
    assert d.estimated_cost_usd == pytest.approx((d.input_tokens + 100) * 0.20 / 1e6)
    assert "deployment together (cheapest healthy" in d.reason


async def test_deployment_over_its_own_limit_fails_over_and_route_sees_it() -> None:
    """A deployment at its own rpm is skipped for the next one (charged at that one's price),
    and Route then names the next one; all at their limits is RESOURCE_EXHAUSTED."""
    deps = [_dep("together", 0.20, 0.20, rate_limits={"rpm": 1}),
            _dep("azure", 0.30, 0.30, rate_limits={"rpm": 1})]
    router = Router.from_config(_config(deps))
    c = Completer(router.config, router)
    req = CompletionRequest(RouteRequest(prompt="Summarize the key points of this meeting."))
    first = await c.complete(req)
    assert first.deployment == "together" and first.provider == "together"
    assert first.cost_usd == pytest.approx(
        (first.usage.input_tokens + first.usage.output_tokens) * 0.20 / 1e6)
    second = await c.complete(req)
    assert second.deployment == "azure"
    assert second.attempts[0].error.startswith("rate limited (client-side): deployment together")
    assert second.cost_usd == pytest.approx(
        (second.usage.input_tokens + second.usage.output_tokens) * 0.30 / 1e6)
    d = router.route(req.route)
    assert d.deployment == "azure" and "together at its rate limit (tried last)" in d.reason
    with pytest.raises(ResourceExhausted):
        await c.complete(req)
    await c.aclose()


@pytest.mark.parametrize(("dep", "problem"), [
    ({"price": {"input": -0.1, "output": 1}}, "deployments[0].price.input: must be >= 0"),
    ({"price": {"input": 1, "output": 1, "tiers": [
        {"above_input_tokens": 200_000, "input": 2, "output": 2},
        {"above_input_tokens": 100_000, "input": 3, "output": 3}]}},
     "deployments[0].price.tiers[1].above_input_tokens: must be greater than the tier before "
     "it (200000)"),
    ({"price": {"input": 1, "output": 1, "tiers": [{"above_input_tokens": 0, "input": 2,
                                                    "output": 2}]}},
     "deployments[0].price.tiers[0].above_input_tokens: must be >= 1"),
    ({"price": {"input": 1, "output": 1, "long_context": {"above_input_tokens": 9, "input": 2,
                                                          "output": 2},
                "tiers": [{"above_input_tokens": 10, "input": 3, "output": 3}]}},
     "deployments[0].price.tiers: give long_context (one tier) or tiers, not both"),
    ({"price": {"input": 1, "output": 1, "tiers": [{"above_input_tokens": 9, "input": 2,
                                                    "output": 2, "cached": 1}]}},
     "deployments[0].price.tiers[0].cached: unknown field"),
    ({"pricing": {"input": 1}}, "deployments[0].pricing: unknown field"),
    ({"latency": {"p50_ms": 900, "p95_ms": 100}}, "deployments[0].latency.p95_ms: must be >= "),
    ({"latency": {"p50_ms": 1, "p95_ms": 2, "p99_ms": 3}},
     "deployments[0].latency.p99_ms: unknown field"),
    ({"rate_limits": {"rpm": -1}}, "deployments[0].rate_limits.rpm: must be >= 0"),
    ({"rate_limits": {"rpd": 5}}, "deployments[0].rate_limits.rpd: unknown field"),
    ({"provider": 7}, "deployments[0].provider: must be a str"),
    ({"price": {"input": float("inf"), "output": 1}}, "deployments[0].price.input: must be a "
                                                      "finite number"),
])
def test_hostile_deployment_config_names_the_field(dep: dict[str, Any], problem: str) -> None:
    """A negative price, tiers out of order, unknown keys or bad limits are rejected by name."""
    deps = [{"endpoint": "together", **dep}, {"endpoint": "azure"}]
    with pytest.raises(ConfigError) as info:
        _config(deps)
    assert f"models.llama.{problem}" in str(info.value)


def test_duplicate_names_and_pairs_are_rejected() -> None:
    """Two deployments with one name, or the same endpoint and model_id twice, are refused."""
    with pytest.raises(ConfigError) as info:
        _config([{"endpoint": "azure", "name": "x"}, {"endpoint": "groq", "name": "x"}])
    assert "models.llama.deployments[1].name: 'x' is already deployments[0]'s name" in \
        str(info.value)
    with pytest.raises(ConfigError) as info:
        _config([{"endpoint": "azure", "name": "a"}, {"endpoint": "azure", "name": "b"}])
    assert "models.llama.deployments[1].model_id: endpoint 'azure' already serves" in \
        str(info.value)
    two = _config([{"endpoint": "azure", "model_id": "m1"}, {"endpoint": "azure",
                                                             "model_id": "m2"}])
    assert [d.name for d in two.models["llama"].deployments] == ["azure/m1", "azure/m2"]


def test_versioned_model_takes_deployment_prices_from_its_version() -> None:
    """On a model with versions a deployment's own price would contradict the rollout: refused."""
    m = model("v", endpoint="azure")
    del m["model_id"]
    m["versions"] = {"a": {"model_id": "v-a"}}
    m["pinned"] = "a"
    m["deployments"] = [{"endpoint": "azure", "price": {"input": 1, "output": 1}}]
    with pytest.raises(ConfigError) as info:
        make_config({"v": m}, endpoints=EPS)
    assert "models.v.deployments[0].price: comes from the pinned version" in str(info.value)


def test_model_price_defaults_to_its_cheapest_seller_and_the_policy_uses_it() -> None:
    """With every deployment priced the model's own price may be left out (its cheapest
    seller's), and the model-level policy compares models at their cheapest seller's price."""
    m = model("llama", endpoint="azure", deployments=THREE)
    del m["price"]
    cfg = make_config({"llama": m, "pricey": model("pricey", endpoint="azure",
                                                   price=(0.25, 0.25))}, endpoints=EPS)
    assert (cfg.models["llama"].price.input, cfg.models["llama"].price.output) == (0.20, 0.20)
    router = Router.from_config(cfg)
    d = router.route("Summarize the key points of this meeting.",
                     constraints=Constraints(max_output_tokens=100), strategy="cost")
    assert (d.model, d.deployment) == ("llama", "together")  # $0.20 beats pricey's $0.25


def test_builtin_catalogue_sells_llama_by_two_providers() -> None:
    """The built-in llama-3.3-70b goes to the cheaper seller, or to the faster one when the
    request's max_latency_ms rules the cheaper one out."""
    router = Router.from_config(None)
    only = frozenset({"llama-3.3-70b"})
    d = router.route("Summarize the key points of this meeting.",
                     constraints=Constraints(allow_models=only))
    assert (d.deployment, d.provider) == ("deepinfra", "deepinfra")
    fast = router.route("Summarize the key points of this meeting.",
                        constraints=Constraints(allow_models=only, max_latency_ms=2000))
    assert fast.deployment == "groq" and "deepinfra p95" in fast.reason


def test_max_cost_leaves_out_dearer_sellers() -> None:
    """A seller over the request's max_cost_usd is left out while another fits; when none
    fits, the cheapest healthy one still leads (the policy judged the model fit)."""
    spec = _config(THREE).models["llama"]
    r = rank(spec, 1000, 1000, max_cost_usd=2000 * 0.30 / 1e6)
    assert [o.deployment.name for o in r.options()] == ["together", "azure"]
    assert "groq over max_cost_usd (left out)" in r.reason
    none = rank(spec, 1000, 1000, max_cost_usd=1e-9)
    assert none.first.deployment.name == "together"
    assert "none within max_cost_usd; cheapest healthy" in none.reason


def test_no_seller_meets_both_then_max_cost_still_holds() -> None:
    """When the only seller fast enough is over max_cost_usd, the decision stays within the
    caller's max_cost_usd (the fastest affordable seller, the dear one left out) instead of
    naming a seller that costs more than the caller allowed."""
    deps = [_dep("together", 0.20, 0.20, p95=1500), _dep("azure", 0.30, 0.30, p95=900),
            _dep("groq", 0.59, 0.79, p95=300)]
    spec = _config(deps).models["llama"]
    r = rank(spec, 1000, 1000, max_latency_ms=800, max_cost_usd=2000 * 0.40 / 1e6)
    assert [o.deployment.name for o in r.options()] == ["azure", "together"]
    assert all(o.cost_usd <= 2000 * 0.40 / 1e6 for o in r.options())
    assert "none meets 800 ms p95 within max_cost_usd; fastest healthy within max_cost_usd" \
        in r.reason and "groq over max_cost_usd (left out)" in r.reason
    d = Router(_config(deps)).route(RouteRequest(prompt="hi", constraints=Constraints(
        max_latency_ms=800, max_cost_usd=3e-4)))
    assert d.deployment == "azure" and d.estimated_cost_usd <= 3e-4


def test_an_absurd_latency_limit_keeps_the_reason_short() -> None:
    """max_latency_ms 1e300 is allowed (no limit in effect), but the reason does not print
    its 301 digits."""
    router = Router.from_config(None)
    d = router.route("Summarize the key points of this meeting.", constraints=Constraints(
        allow_models=frozenset({"llama-3.3-70b"}), max_latency_ms=1e300))
    assert "1e+300 ms" in d.reason and len(d.reason) < 400
