"""Complete and CompleteStream over a real grpc.aio server (simulated providers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import grpc
import pytest
import yaml

from routecore.config import parse_config
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc


def _config(sim: dict[str, Any] | None = None) -> Any:
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    for spec in raw["models"].values():
        if sim:
            spec["sim"] = dict(sim)
    return parse_config(raw)


async def _serve(config: Any) -> App:
    app = App.from_config(config, access_log=False)
    await app.start("127.0.0.1", 0)
    return app


@pytest.fixture
async def slow_app() -> AsyncIterator[App]:
    app = await _serve(_config({"latency_ms": {"p50": 300, "p95": 300}}))
    yield app
    await app.stop(0.5)


async def test_complete_answers_with_usage_and_cost(stub: router_pb2_grpc.RouterStub) -> None:
    """Complete returns text, the answering model, usage, cost from the registry and attempts."""
    res = await stub.Complete(pb.CompleteRequest(
        route=pb.RouteRequest(prompt="What is the capital of Australia?"), max_output_tokens=64),
        timeout=10)
    assert res.text and res.model and res.usage.input_tokens > 0 and res.usage.output_tokens > 0
    assert res.cost_usd > 0 and res.latency_ms >= 0 and res.attempts
    assert res.attempts[-1].error == "" and res.decision.model
    assert res.model in (res.decision.model, *res.decision.fallbacks)


async def test_complete_stream_last_chunk_has_usage(stub: router_pb2_grpc.RouterStub) -> None:
    """CompleteStream yields deltas and a last done chunk carrying usage and cost."""
    chunks = [c async for c in stub.CompleteStream(pb.CompleteRequest(
        route=pb.RouteRequest(prompt="Write a haiku about autumn rain.")), timeout=10)]
    assert chunks[-1].done and chunks[-1].usage.output_tokens > 0 and chunks[-1].cost_usd > 0
    assert not any(c.done for c in chunks[:-1])
    assert "".join(c.delta for c in chunks)


async def test_complete_bad_input(stub: router_pb2_grpc.RouterStub) -> None:
    """An empty prompt in Complete is INVALID_ARGUMENT, as in Route."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(prompt="")))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_deadline_bounds_the_call(slow_app: App) -> None:
    """A caller deadline shorter than the upstream latency ends in DEADLINE_EXCEEDED, promptly."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{slow_app.port}") as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(prompt="hello")),
                                timeout=0.1)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert loop.time() - t0 < 1.0


async def test_all_providers_failing_is_unavailable_with_every_attempt() -> None:
    """When every candidate fails, the status is UNAVAILABLE and the message lists each attempt."""
    app = await _serve(_config({"status_5xx_rate": 1.0}))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(prompt="hello")),
                                    timeout=20)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            details = info.value.details() or ""
            assert "all providers failed" in details and details.count("@") >= 2
    finally:
        await app.stop(0.5)


async def test_graceful_shutdown_drains_in_flight_calls(slow_app: App) -> None:
    """Calls in flight when shutdown begins complete; health is NOT_SERVING meanwhile."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{slow_app.port}") as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        await stub.Route(pb.RouteRequest(prompt="warm up"))
        calls = [asyncio.ensure_future(stub.Complete(
            pb.CompleteRequest(route=pb.RouteRequest(prompt=f"question {i}?")), timeout=10))
            for i in range(8)]
        await asyncio.sleep(0.1)  # the calls are now waiting on the 300 ms upstream
        await slow_app.stop(3.0)
        results = await asyncio.gather(*calls)
    assert all(r.text for r in results)


async def test_cascade_and_ensemble_over_rpc(stub: router_pb2_grpc.RouterStub) -> None:
    """cascade=true reports its steps and ensemble_size=3 reports three members, over gRPC."""
    prompt = pb.RouteRequest(prompt="Prove that the sum of two even numbers is even.")
    res = await stub.Complete(pb.CompleteRequest(route=prompt, cascade=True), timeout=20)
    assert res.text and res.cascade_steps
    assert all(0.0 <= s.confidence <= 1.0 for s in res.cascade_steps)
    assert res.cascade_steps[-1].model == res.model and not res.cascade_steps[-1].escalated
    ens = await stub.Complete(pb.CompleteRequest(route=prompt, ensemble_size=3), timeout=20)
    assert ens.text and len({s.model for s in ens.cascade_steps}) == 3


async def test_stream_cut_after_first_chunk_is_an_error_status() -> None:
    """A stream cut after its first chunk ends with UNAVAILABLE, never a done chunk."""
    app = await _serve(_config({"cut_stream_rate": 1.0}))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            got: list[pb.CompleteChunk] = []
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for chunk in stub.CompleteStream(pb.CompleteRequest(
                        route=pb.RouteRequest(prompt="Write a long story about a lighthouse.")),
                        timeout=20):
                    got.append(chunk)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert got and not any(c.done for c in got)
    finally:
        await app.stop(0.5)
