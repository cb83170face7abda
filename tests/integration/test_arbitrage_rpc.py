"""Provider arbitrage over a real gRPC server: one model sold by two simulated providers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import grpc
import pytest
import yaml
from conftest_complete import FAST_RESILIENCE, make_config, model

from routecore.calling.providers.sim_server import SimServer
from routecore.config import Config, parse_config
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

MODEL_ID = "llama-3.3-70b"
PROMPT = "Summarize the key points of this meeting in three bullet points."
CHEAP, DEAR = (0.20, 0.40), (0.30, 0.60)  # USD per Mtok (input, output)


def _served(sim: dict[str, Any] | None = None) -> Config:
    """What one simulated provider serves: the model, optionally with injected faults."""
    m = model("llama", endpoint="sim", sim=sim)
    m["model_id"] = MODEL_ID
    return make_config({"llama": m})


def _router_config(cheap_url: str, dear_url: str, budgets: dict[str, Any] | None = None
                   ) -> Config:
    """The router's view: model llama sold by together (cheap) and azure (dear)."""
    deps = [{"name": "together", "provider": "together", "endpoint": "together",
             "price": {"input": CHEAP[0], "output": CHEAP[1]}},
            {"name": "azure", "provider": "azure", "endpoint": "azure",
             "price": {"input": DEAR[0], "output": DEAR[1]}}]
    m = model("llama", endpoint="together", price=(0.5, 0.5), deployments=deps)
    m["model_id"] = MODEL_ID
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw.update(models={"llama": m}, routing={}, resilience=FAST_RESILIENCE,
               endpoints={"together": {"kind": "openai", "base_url": cheap_url, "timeout_s": 5},
                          "azure": {"kind": "openai", "base_url": dear_url, "timeout_s": 5}})
    if budgets is not None:
        raw["budgets"] = budgets
    return parse_config(raw, "<test>")


@asynccontextmanager
async def _fleet(cheap_sim: dict[str, Any] | None = None, budgets: dict[str, Any] | None = None
                 ) -> AsyncIterator[router_pb2_grpc.RouterStub]:
    async with SimServer(_served(cheap_sim)) as cheap, SimServer(_served()) as dear:
        app = App.from_config(_router_config(cheap.base_url, dear.base_url, budgets),
                              access_log=False)
        await app.start("127.0.0.1", 0)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
                yield router_pb2_grpc.RouterStub(ch)
        finally:
            await app.stop(0.5)


def _cost(usage: pb.Usage, price: tuple[float, float]) -> float:
    return (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1e6


async def test_route_names_the_cheap_deployment_and_complete_charges_it() -> None:
    """Route names the cheaper seller with its cost and why; Complete uses it and charges its
    price to cost_usd and to the tenant's budget; ListModels shows both sellers."""
    async with _fleet(budgets={"tenants": {"acme": {"usd_per_day": 1.0}}}) as stub:
        route = pb.RouteRequest(prompt=PROMPT, tenant="acme",
                                constraints=pb.Constraints(max_output_tokens=100))
        d = await stub.Route(route, timeout=5)
        assert (d.model, d.deployment, d.provider) == ("llama", "together", "together")
        assert list(d.deployment_order) == ["together", "azure"]
        out = d.estimated_output_tokens  # the expected answer, capped by max_output_tokens
        assert 0 < out <= 100
        assert d.estimated_cost_usd == pytest.approx((d.input_tokens * CHEAP[0] + out * CHEAP[1])
                                                     / 1e6)
        n = d.input_tokens + out
        cheap, dear = ((d.input_tokens * p[0] + out * p[1]) / n for p in (CHEAP, DEAR))
        assert f"deployment together (cheapest healthy: ${cheap:.2f}/Mtok vs azure " \
               f"${dear:.2f})" in d.reason
        res = await stub.Complete(pb.CompleteRequest(route=route, max_output_tokens=100),
                                  timeout=10)
        assert (res.deployment, res.provider) == ("together", "together")
        assert res.cost_usd == pytest.approx(_cost(res.usage, CHEAP))
        assert [(a.provider, a.deployment, a.error) for a in res.attempts] == [
            ("together", f"together/{MODEL_ID}", "")]
        status = await stub.GetBudget(pb.BudgetRequest(tenant="acme"), timeout=5)
        assert status.windows[0].spent == pytest.approx(res.cost_usd)
        models = await stub.ListModels(pb.ListModelsRequest(), timeout=5)
        (info,) = [m for m in models.models if m.name == "llama"]
        assert [(x.name, x.provider, x.input_price_per_mtok) for x in info.deployments] == [
            ("together", "together", CHEAP[0]), ("azure", "azure", DEAR[0])]


async def test_failing_cheap_deployment_fails_over_and_charges_the_next() -> None:
    """When the cheap seller answers 500 (the sim's fault injection), Complete fails over to the
    dearer one and charges its price; the attempts name each deployment; streams do too."""
    async with _fleet(cheap_sim={"status_5xx_rate": 1.0},
                      budgets={"tenants": {"acme": {"usd_per_day": 1.0}}}) as stub:
        route = pb.RouteRequest(prompt=PROMPT, tenant="acme")
        res = await stub.Complete(pb.CompleteRequest(route=route, max_output_tokens=100),
                                  timeout=10)
        assert (res.model, res.deployment, res.provider) == ("llama", "azure", "azure")
        assert res.cost_usd == pytest.approx(_cost(res.usage, DEAR))
        failed = [a for a in res.attempts if a.error]
        assert failed and all(a.provider == "together" and a.deployment ==
                              f"together/{MODEL_ID}" for a in failed)
        assert res.attempts[-1].deployment == f"azure/{MODEL_ID}" and not res.attempts[-1].error
        status = await stub.GetBudget(pb.BudgetRequest(tenant="acme"), timeout=5)
        assert status.windows[0].spent == pytest.approx(res.cost_usd)
        chunks = [c async for c in stub.CompleteStream(
            pb.CompleteRequest(route=route, max_output_tokens=50), timeout=10)]
        assert chunks[-1].done and chunks[-1].deployment == "azure"
        assert chunks[-1].cost_usd == pytest.approx(_cost(chunks[-1].usage, DEAR))


async def test_latency_constraint_over_rpc_picks_the_fast_seller() -> None:
    """With max_latency_ms below the cheap seller's p95, Route names the fast one and says why."""
    deps = [{"name": "together", "endpoint": "together", "price": {"input": 0.2, "output": 0.4},
             "latency": {"p50_ms": 500, "p95_ms": 2000}},
            {"name": "azure", "endpoint": "azure", "price": {"input": 0.3, "output": 0.6},
             "latency": {"p50_ms": 100, "p95_ms": 400}}]
    m = model("llama", endpoint="together", deployments=deps)
    m["latency"] = {"p50_ms": 100, "p95_ms": 400, "tokens_per_s": 1000}
    cfg = make_config({"llama": m}, endpoints={"together": {"kind": "simulated"},
                                               "azure": {"kind": "simulated"}})
    app = App.from_config(cfg, access_log=False)
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            d = await stub.Route(pb.RouteRequest(prompt=PROMPT, constraints=pb.Constraints(
                max_latency_ms=1500, max_output_tokens=100)), timeout=5)
            assert d.deployment == "azure" and list(d.deployment_order) == ["azure"]
            assert "cheapest healthy meeting 1500 ms p95" in d.reason
            assert "together p95" in d.reason and "(left out)" in d.reason
    finally:
        await app.stop(0.5)
