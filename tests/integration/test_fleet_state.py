"""Two replicas on one real Redis: one global rate limit and one circuit breaker per deployment."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import grpc
import pytest
import yaml
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


async def test_ab_totals_are_one_report_for_the_fleet(redis_url: str, tmp_path: Path) -> None:
    """Decisions and feedback on two replicas add to one A/B report, read with
    `routecore ab-report --config`; a feedback counts for its decision's variant."""
    cfg = _config(redis_url, {"good": model("good"), "other": model("other")})
    cfg = dataclasses.replace(cfg, router_version=f"ab-{uuid.uuid4().hex[:6]}", extra={
        **cfg.extra, "ab": {"candidate": {"artifact": "cost", "share": 0.5}, "sticky_by": "user"}})
    apps = [App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / f"f{i}.db"))
            for i in range(2)]
    ports = [await a.start("127.0.0.1", 0) for a in apps]
    variants: dict[str, int] = {}
    try:
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{p}") for p in ports]
        stubs = [Stub(ch) for ch in channels]
        for i in range(12):
            d = await stubs[i % 2].Route(pb.RouteRequest(prompt=f"question {i}?", user=f"u{i}"))
            variants[d.variant] = variants.get(d.variant, 0) + 1
            await stubs[(i + 1) % 2].Feedback(pb.FeedbackRequest(request_id=d.request_id,
                                                                 score=1.0 if i % 2 else 0.0))
        for ch in channels:
            await ch.close()
    finally:
        for a in apps:
            await a.stop(0)  # flushes the write-behind totals
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({**raw, "router_version": cfg.router_version,
                                 "state": cfg.extra["state"], "ab": cfg.extra["ab"]}))
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "routecore.cli", "ab-report", "--config", str(f), "--json",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    report = json.loads(out)
    assert {v: r["count"] for v, r in report.items()} == variants
    assert sum(r["feedback_n"] for r in report.values()) == 12
    assert set(variants) == {"control", "candidate"}


async def test_redis_down_calls_and_feedback_carry_on(tmp_path: Path) -> None:
    """With Redis unreachable, Complete still answers (limits and breakers let calls through),
    Feedback by prompt is stored and learned, and the outage is counted."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"  # nothing listens there
    cfg = _config(dead, {"lim": model("lim", rpm=5), "good": model("good")})
    app = App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / "f.db"))
    port = await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = Stub(ch)
            for _ in range(3):
                assert (await stub.Complete(_only("lim"))).model == "lim"
            res = await stub.Feedback(pb.FeedbackRequest(prompt="What is 2+2?", model="lim",
                                                         score=1.0))
            assert res.feedback_id
        assert app.state is not None and app.state.failures > 0
    finally:
        await app.stop(0)
