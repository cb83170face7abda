"""Two replicas on one real Redis: one global rate limit and one circuit breaker per deployment."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from conftest_complete import make_config, model

from routecore.config import Config
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

Stub = router_pb2_grpc.RouterStub


def _config(redis_url: str, models: dict[str, dict[str, object]]) -> Config:
    cfg = make_config(models, resilience={"retry": {"max_attempts": 0},
                                          "breaker": {"failure_threshold": 2, "cooldown_s": 60}})
    return dataclasses.replace(cfg, extra={**cfg.extra, "state": {
        "backend": "redis", "redis_url": redis_url, "timeout_s": 5.0}})


@pytest.fixture
async def replicas(redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[Stub, Stub, str, str]]:
    """Two serving App instances (replicas) sharing one Redis, and the two model names."""
    tag = uuid.uuid4().hex[:6]
    limited, broken = f"lim-{tag}", f"error_500-{tag}"
    cfg = _config(redis_url, {limited: model(limited, rpm=2), broken: model(broken),
                              "good": model("good")})
    apps = [App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / f"f{i}.db"))
            for i in range(2)]
    ports = [await a.start("127.0.0.1", 0) for a in apps]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{p}") for p in ports]
    try:
        yield Stub(channels[0]), Stub(channels[1]), limited, broken
    finally:
        for ch in channels:
            await ch.close()
        for a in apps:
            await a.stop(0)


def _only(name: str) -> pb.CompleteRequest:
    return pb.CompleteRequest(route=pb.RouteRequest(
        prompt="What is 2+2?", constraints=pb.Constraints(allow_models=[name])))


async def test_replicas_share_one_rate_limit(replicas: tuple[Stub, Stub, str, str]) -> None:
    """A model's RPM is one limit across replicas: 2 calls on one, the third on the other is
    refused client-side."""
    a, b, limited, _ = replicas
    for _ in range(2):
        assert (await a.Complete(_only(limited))).model == limited
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await b.Complete(_only(limited))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate limited (client-side)" in (info.value.details() or "")


async def test_one_replicas_failures_open_the_breaker_for_all(
        replicas: tuple[Stub, Stub, str, str]) -> None:
    """Failures seen by one replica open the deployment's breaker for the other, which then
    refuses to call the broken upstream at all (and routes around it)."""
    a, b, _, broken = replicas
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await a.Complete(_only(broken))
        assert "HTTP 500" in (info.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await b.Complete(_only(broken))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "circuit open" in (info.value.details() or "")
    assert "HTTP 500" not in (info.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await b.Route(pb.RouteRequest(prompt="hi", constraints=pb.Constraints(
            allow_models=[broken])))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
