"""Load-aware choice over real gRPC with the simulated provider: what Complete's calls
observe changes what Route chooses, on one server (memory) and across replicas (Redis)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest_complete import make_config, model

from routecore.config import Config
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

Stub = router_pb2_grpc.RouterStub
PROMPT = "What is the capital of France?"
LOAD = {"half_life_s": 0.5, "refresh_s": 0.05, "prior_weight": 1}


def _config(slow: str, steady: str, limited: str, redis_url: str | None) -> Config:
    """`slow`: the cheapest, its prior says 20 ms but its calls take ~250-300 ms; `steady`:
    dearer and really fast; `limited`: the cheapest of all, 2 requests a minute."""
    cfg = make_config({
        slow: model(slow, price=(0.1, 0.2), sim={"latency_ms": {"p50": 250, "p95": 300}}),
        steady: model(steady, price=(1.0, 2.0)),
        limited: model(limited, price=(0.01, 0.02), rpm=2),
    }, load=LOAD)
    if redis_url is None:
        return cfg
    return dataclasses.replace(cfg, extra={**cfg.extra, "state": {
        "backend": "redis", "redis_url": redis_url, "timeout_s": 5.0}})


@pytest.fixture(params=["memory", "redis"])
async def fleet(request: Any, tmp_path: Path) -> AsyncIterator[tuple[Stub, Stub, str, str, str]]:
    """(stub that Completes, stub that Routes, slow, steady, limited). Memory: one server
    does both. Redis: two replicas; the one that Routes never calls a model itself."""
    tag = uuid.uuid4().hex[:6]
    names = (f"slow-{tag}", f"steady-{tag}", f"lim-{tag}")
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    cfg = _config(*names, redis_url)
    n = 2 if redis_url else 1
    apps = [App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / f"f{i}.db"))
            for i in range(n)]
    ports = [await a.start("127.0.0.1", 0) for a in apps]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{p}") for p in ports]
    try:
        yield Stub(channels[0]), Stub(channels[-1]), *names
    finally:
        for ch in channels:
            await ch.close()
        for a in apps:
            await a.stop(0)


def _route(names: list[str], max_latency_ms: float = 0.0) -> pb.RouteRequest:
    return pb.RouteRequest(prompt=PROMPT, strategy="cost", explain=True,
                           constraints=pb.Constraints(allow_models=names,
                                                      max_latency_ms=max_latency_ms))


async def _until(stub: Stub, req: pb.RouteRequest, ok: Any, within_s: float) -> pb.RouteDecision:
    """Route until `ok(decision)` (the router's snapshot refreshes in the background)."""
    end = time.monotonic() + within_s
    while True:
        d = await stub.Route(req, timeout=5)
        if ok(d) or time.monotonic() > end:
            return d
        await asyncio.sleep(0.05)


async def test_slow_model_is_avoided_then_recovers(
        fleet: tuple[Stub, Stub, str, str, str]) -> None:
    """After a model's calls turn out slow, Route with max_latency_ms stops choosing it and
    says why (observed against prior); as the observations decay it is chosen again."""
    caller, router, slow, steady, _ = fleet
    req = _route([slow, steady], max_latency_ms=150)
    assert (await router.Route(req, timeout=5)).model == slow  # the prior says 20 ms
    only_slow = pb.CompleteRequest(route=pb.RouteRequest(
        prompt=PROMPT, constraints=pb.Constraints(allow_models=[slow])))
    done = await asyncio.gather(*(caller.Complete(only_slow, timeout=10) for _ in range(6)))
    assert all(r.model == slow and r.latency_ms >= 150 for r in done)
    d = await _until(router, req, lambda d: d.model != slow, 5.0)
    assert d.model == steady
    cand = {c.model: c for c in d.candidates}[slow]
    assert cand.rejected_reason.startswith("estimated p95 latency ")
    assert "> max_latency_ms 150" in cand.rejected_reason
    assert f"{slow} p95 observed " in cand.rejected_reason and "(prior 20 ms)" in cand.rejected_reason
    assert cand.observed_calls > 1 and cand.observed_p95_ms >= 150
    # Without a latency constraint the cheap model is still the cost choice.
    assert (await router.Route(_route([slow, steady]), timeout=5)).model == slow
    d = await _until(router, req, lambda d: d.model == slow, 8.0)
    assert d.model == slow  # the slow calls decayed (half-life 0.5 s): the prior speaks again


async def test_model_at_its_rpm_limit_is_skipped(
        fleet: tuple[Stub, Stub, str, str, str]) -> None:
    """Once a model's RPM is used up by Complete calls, Route skips it and says why."""
    caller, router, _, steady, limited = fleet
    req = _route([limited, steady])
    assert (await router.Route(req, timeout=5)).model == limited  # the cheapest
    only = pb.CompleteRequest(route=pb.RouteRequest(
        prompt=PROMPT, constraints=pb.Constraints(allow_models=[limited])))
    for _ in range(2):
        assert (await caller.Complete(only, timeout=10)).model == limited
    d = await _until(router, req, lambda d: d.model != limited, 5.0)
    assert d.model == steady
    cand = {c.model: c for c in d.candidates}[limited]
    assert cand.rejected_reason.startswith("at its limit: rate limit, 0.")
    assert cand.rejected_reason.endswith("of 2 requests left this minute")
    assert cand.HasField("rpm_left") and cand.rpm_left < 1
    # Every allowed model at its limit: UNAVAILABLE, retry later (not "cannot be served").
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await router.Route(_route([limited]), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "at its limit" in (info.value.details() or "")


async def test_output_estimate_over_grpc(fleet: tuple[Stub, Stub, str, str, str]) -> None:
    """The decision carries the estimated output length and why."""
    _, router, slow, steady, _ = fleet
    d = await router.Route(pb.RouteRequest(prompt="Write a 2,000-word essay on tides",
                                           constraints=pb.Constraints(
                                               allow_models=[slow, steady])), timeout=5)
    assert d.estimated_output_tokens == 2670 and d.output_tokens_basis == "asked for 2,000 words"


async def test_streamed_calls_are_observed(fleet: tuple[Stub, Stub, str, str, str]) -> None:
    """A stream's whole duration is observed once it ends, like a plain call's."""
    caller, router, slow, steady, _ = fleet
    req = pb.CompleteRequest(route=pb.RouteRequest(
        prompt=PROMPT, constraints=pb.Constraints(allow_models=[slow])))
    chunks = [c async for c in caller.CompleteStream(req, timeout=10)]
    assert chunks[-1].done and chunks[-1].model == slow

    def seen(d: pb.RouteDecision) -> bool:
        return {c.model: c for c in d.candidates}[slow].observed_calls > 0.5
    d = await _until(router, _route([slow, steady]), seen, 5.0)
    cand = {c.model: c for c in d.candidates}[slow]
    assert cand.observed_calls > 0.5 and cand.observed_p50_ms >= 150
