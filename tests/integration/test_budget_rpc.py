"""Budgets over a real gRPC server: Complete is capped, Route paces, GetBudget reports,
and two servers on one real Redis hold one global budget."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import grpc
import pytest
import yaml

from routecore.config import Config, parse_config
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

PROMPT = "Summarize the plot of Hamlet in two sentences."


def _config(budgets: dict[str, Any], state: dict[str, Any] | None = None,
            **sections: Any) -> Config:
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["budgets"] = budgets
    if state is not None:
        raw["state"] = state
    raw.update(sections)
    return parse_config(raw)


async def _serve(config: Config) -> App:
    app = App.from_config(config, access_log=False)
    await app.start("127.0.0.1", 0)
    return app


@pytest.fixture
async def capped() -> AsyncIterator[tuple[App, router_pb2_grpc.RouterStub]]:
    app = await _serve(_config({"tenants": {"acme": {"usd_per_day": 0.002}},
                                "pacing": {"start": 0.5}}))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield app, router_pb2_grpc.RouterStub(ch)
    await app.stop(0.5)


def _req(tenant: str, *, pin: bool = True, **kw: Any) -> pb.CompleteRequest:
    """A Complete for `tenant`; pinned to one model (no cheaper fallback) unless pin=False."""
    kw.setdefault("max_output_tokens", 64)
    allow = ["gemini-2.5-pro"] if pin else []
    return pb.CompleteRequest(route=pb.RouteRequest(
        prompt=PROMPT, tenant=tenant, strategy="quality",
        constraints=pb.Constraints(allow_models=allow)), **kw)


async def _spent(stub: router_pb2_grpc.RouterStub, tenant: str) -> pb.BudgetWindow:
    status = await stub.GetBudget(pb.BudgetRequest(tenant=tenant), timeout=5)
    (w,) = status.windows
    return w


async def test_complete_stops_at_the_cap_and_charges_what_was_spent(
        capped: tuple[App, router_pb2_grpc.RouterStub]) -> None:
    """Completes are charged their real cost until the cap; then RESOURCE_EXHAUSTED says
    what is left and when it resets, and GetBudget's spend equals the answers' costs."""
    _, stub = capped
    costs: list[float] = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        for _ in range(200):
            res = await stub.Complete(_req("acme"), timeout=10)
            costs.append(res.cost_usd)
    err = info.value
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "budget exhausted: tenant 'acme' usd_per_day has $" in err.details()
    assert "resets at " in err.details() and err.details().endswith("T00:00:00Z")
    w = await _spent(stub, "acme")
    assert len(costs) >= 2 and w.spent == pytest.approx(sum(costs), abs=1e-9)
    assert w.spent <= w.limit == 0.002 and w.reserved == 0
    assert (w.scope, w.name, w.limit_name) == ("tenant", "acme", "usd_per_day")
    assert w.resets_at.endswith("T00:00:00Z") and w.resets_at_unix > 0
    other = await stub.Complete(_req("globex"), timeout=10)  # no cap on another tenant
    assert other.text


async def test_route_reports_budget_and_paces(
        capped: tuple[App, router_pb2_grpc.RouterStub]) -> None:
    """Route carries the budget state; past pacing.start the reason says it paces."""
    _, stub = capped
    d0 = await stub.Route(pb.RouteRequest(prompt=PROMPT, tenant="acme", strategy="quality"))
    assert d0.HasField("budget") and d0.budget.share_used == 0 and "pacing" not in d0.reason
    assert d0.budget.remaining_usd == pytest.approx(0.002)
    for _ in range(6):  # 6 x $0.00019 of $0.002
        await stub.Complete(_req("acme", max_output_tokens=16), timeout=10)
    d1 = await stub.Route(pb.RouteRequest(prompt=PROMPT, tenant="acme", strategy="quality"))
    assert d1.budget.share_used > 0.5 and d1.budget.pacing > 0
    assert "budget pacing" in d1.reason and d1.estimated_cost_usd < d0.estimated_cost_usd
    free = await stub.Route(pb.RouteRequest(prompt=PROMPT, tenant="other"))
    assert not free.HasField("budget")


async def test_streams_cascades_and_ensembles_are_charged_every_call(
        capped: tuple[App, router_pb2_grpc.RouterStub]) -> None:
    """Streams, every cascade step and every ensemble member are settled: spend equals cost."""
    _, stub = capped
    total = 0.0
    chunks = [c async for c in stub.CompleteStream(_req("acme", max_output_tokens=16),
                                                    timeout=10)]
    assert chunks[-1].done
    total += chunks[-1].cost_usd
    res = await stub.Complete(_req("acme", pin=False, max_output_tokens=16, cascade=True,
                                   cascade_threshold=1.0), timeout=10)
    assert len(res.cascade_steps) >= 2
    total += res.cost_usd
    res = await stub.Complete(pb.CompleteRequest(
        route=pb.RouteRequest(prompt=PROMPT, tenant="acme", strategy="cost"),
        max_output_tokens=8, ensemble_size=3), timeout=10)
    assert len(res.cascade_steps) == 3
    total += res.cost_usd
    w = await _spent(stub, "acme")
    assert w.spent == pytest.approx(total, abs=1e-9) and w.reserved == 0


async def test_two_servers_on_one_redis_hold_one_budget(redis_url: str) -> None:
    """Concurrent Completes spread over two servers sharing Redis never pass the one cap by more
    than one call's estimate, and each success is charged exactly once."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    cap = 0.004
    config = _config({"tenants": {tenant: {"usd_per_day": cap}}},
                     {"backend": "redis", "redis_url": redis_url})
    apps = [await _serve(config), await _serve(config)]
    chans = [grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") for a in apps]
    stubs = [router_pb2_grpc.RouterStub(c) for c in chans]
    try:
        async def one(i: int) -> float | None:
            try:
                res = await stubs[i % 2].Complete(_req(tenant), timeout=10)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.details()
                return None
            return res.cost_usd

        results = await asyncio.gather(*(one(i) for i in range(48)))
        ok = [c for c in results if c is not None]
        views = [await _spent(s, tenant) for s in stubs]
        assert views[0] == views[1]  # both servers see the one global budget
        assert ok and len(ok) < len(results)
        assert views[0].spent == pytest.approx(sum(ok), abs=1e-9) and views[0].reserved == 0
        assert views[0].spent <= cap
        assert {a.budgets.settled for a in apps if a.budgets} != {0}  # both did settle
    finally:
        for c in chans:
            await c.close()
        for a in apps:
            await a.stop(0.5)


async def test_redis_down_fails_budgets_closed_but_routes() -> None:
    """With Redis unreachable a budgeted Complete is UNAVAILABLE saying why; Route still works."""
    from services import free_port

    app = await _serve(_config({"default": {"usd_per_day": 1}},
                               {"backend": "redis", "timeout_s": 0.2,
                                "redis_url": f"redis://127.0.0.1:{free_port()}/0"}))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Complete(_req("acme"), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "budgets fail closed" in info.value.details()
            d = await stub.Route(pb.RouteRequest(prompt=PROMPT, tenant="acme"), timeout=5)
            assert d.model and not d.HasField("budget")
            assert app.state is not None and app.state.failures >= 2
    finally:
        await app.stop(0.5)


async def test_with_auth_a_caller_sees_and_spends_only_its_own_budget() -> None:
    """With API keys, GetBudget answers for the key's own tenant (another is PERMISSION_DENIED),
    and a key's own cap is charged by its calls."""
    from test_auth_rpc import ACME, BOB, auth_config, bearer

    app = await _serve(auth_config({"budgets": {
        "tenants": {"acme": {"usd_per_day": 1}, "globex": {"usd_per_day": 2}},
        "keys": {"acme-bob": {"usd_per_day": 0.001}}}}))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            mine = await stub.GetBudget(pb.BudgetRequest(), metadata=bearer(ACME), timeout=5)
            assert mine.tenant == "acme" and [w.limit for w in mine.windows] == [1.0]
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetBudget(pb.BudgetRequest(tenant="globex"), metadata=bearer(ACME),
                                     timeout=5)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            res = await stub.Complete(_req(""), metadata=bearer(BOB), timeout=10)
            bob = await stub.GetBudget(pb.BudgetRequest(), metadata=bearer(BOB), timeout=5)
            assert bob.user == "bob"
            spent = {(w.scope, w.name): w.spent for w in bob.windows}
            assert spent == {("tenant", "acme"): pytest.approx(res.cost_usd),
                             ("key", "acme-bob"): pytest.approx(res.cost_usd)}
    finally:
        await app.stop(0.5)


async def test_batch_items_are_charged_to_the_key_s_tenant(tmp_path: Any) -> None:
    """With auth on, a batch whose items name no tenant is held and charged on the API key's
    tenant (not on the default), so a batch cannot slip past the tenant's cap."""
    from dataclasses import replace

    from conftest_complete import make_config
    from test_auth_rpc import ACME, _sha, bearer
    from test_complete_batch_rpc import MODELS, _until_done, client_config

    from routecore.calling.providers.sim_server import SimServer

    eps = {n: {"kind": "simulated"} for n in ("up", "plain")}
    async with SimServer(make_config(MODELS, endpoints=eps), batch_delay_s=0.1) as srv:
        cfg = client_config(srv, auth={"keys": [
            {"id": "acme-1", "sha256": _sha(ACME), "tenant": "acme"}]})
        cfg = replace(cfg, extra={**cfg.extra, "budgets": {
            "tenants": {"acme": {"usd_per_day": 0.0003}}, "default": {"usd_per_day": 100}}})
        app = await _serve(cfg)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
                stub = router_pb2_grpc.RouterStub(ch)
                reqs = [pb.CompleteRequest(route=pb.RouteRequest(
                    prompt=f"Question {i}: what is {i} + {i}?",
                    constraints=pb.Constraints(allow_models=["cheap"])), max_output_tokens=64)
                    for i in range(4)]
                job = await stub.CompleteBatch(pb.CompleteBatchRequest(requests=reqs),
                                               metadata=bearer(ACME))
                assert sum(i.error_code == "RESOURCE_EXHAUSTED" for i in job.items) == 2
                done = await _until_done(stub, job.job_id, metadata=bearer(ACME))
                (w,) = (await stub.GetBudget(pb.BudgetRequest(), metadata=bearer(ACME))).windows
                assert w.name == "acme" and w.spent == pytest.approx(done.cost_usd, abs=1e-9)
                assert w.reserved == 0 and done.succeeded == 2
        finally:
            await app.stop(0.5)
