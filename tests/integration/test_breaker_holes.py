"""The circuit breaker as a hostile upstream finds it: counts, rates, cut streams, off switch,
and what routing answers while it is open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from conftest_complete import FakeClock, make_config, model, router_for

from routecore.calling.completion import Completer
from routecore.calling.resilience import BreakerConfig, CircuitBreaker
from routecore.calling.types import CompletionRequest
from routecore.domain import Constraints, RouteRequest
from routecore.errors import AllProvidersFailed, ModelsUnavailable, NoModelAvailable, StreamInterrupted
from routecore.routing.router import Router
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

REQ = CompletionRequest(RouteRequest(prompt="Summarize the key points of this meeting."))
BROKEN = {"retry": {"max_attempts": 0}, "breaker": {"failure_threshold": 2, "cooldown_s": 60}}


def test_successes_in_between_do_not_erase_failures() -> None:
    """Failures interleaved with successes still open the breaker at the count threshold."""
    b = CircuitBreaker(BreakerConfig(failure_threshold=3, window_s=10, min_calls=1000), FakeClock())
    for _ in range(2):
        b.record_failure()
        b.record_success()
    assert b.state == "closed"
    b.record_failure()
    assert b.state == "open"


def test_failure_rate_inside_the_window_opens() -> None:
    """Half the calls failing (over min_calls) opens it though the count threshold is far off."""
    clock = FakeClock()
    b = CircuitBreaker(BreakerConfig(failure_threshold=100, window_s=10, failure_rate=0.5,
                                     min_calls=6), clock)
    for _ in range(2):
        b.record_success()
        b.record_failure()
    assert b.state == "closed"  # 2 of 4: under min_calls
    b.record_success()
    b.record_failure()
    assert b.state == "open"
    clock.advance(20)  # cooldown passed: half-open; the probe's success starts a fresh window
    assert b.allow()
    b.record_success()
    b.record_failure()
    assert b.state == "closed"


async def _drain(it: AsyncIterator[object]) -> None:
    async for _ in it:
        pass


async def test_streams_cut_after_the_first_chunk_open_the_breaker() -> None:
    """Each stream cut mid-way is one failure (not a success plus a failure): two cuts open it."""
    cfg = make_config({"cut_stream": model("cut_stream"), "good": model("good")},
                      resilience=BROKEN)
    c = Completer(cfg, router_for("cut_stream", ["good"]))
    for _ in range(2):
        with pytest.raises(StreamInterrupted):
            await _drain(c.stream(REQ))
    assert c.resilience.breakers.state("sim/cut_stream") == "open"
    events = [e async for e in c.stream(REQ)]
    assert events[-1].model == "good"  # the next stream fails over before its first chunk
    await c.aclose()


async def test_disabled_breaker_never_marks_a_model_unhealthy() -> None:
    """With resilience.breaker.enabled false, failures neither open breakers nor steer routing."""
    cfg = make_config({"error_500-a": model("error_500-a", price=(0.1, 0.1)),
                       "good": model("good", price=(5.0, 5.0))},
                      resilience={"retry": {"max_attempts": 0},
                                  "breaker": {"enabled": False, "failure_threshold": 1}})
    router = Router.from_config(cfg)
    c = Completer(cfg, router)
    for _ in range(3):
        r = await c.complete(REQ)
        assert r.model == "good" and r.attempts[0].error.startswith("sim: HTTP 500")
    assert c.health() == {}
    d = router.route("hi", constraints=Constraints(allow_models=frozenset({"error_500-a"})))
    assert d.model == "error_500-a"
    await c.aclose()


async def test_open_breaker_on_the_only_allowed_model_is_transient() -> None:
    """The only allowed model behind an open breaker is ModelsUnavailable naming just it; a
    request that no model could serve anyway still gets NoModelAvailable."""
    cfg = make_config({"error_500-a": model("error_500-a"),
                       "good": model("good")}, resilience=BROKEN)
    router = Router.from_config(cfg)
    c = Completer(cfg, router)
    only = Constraints(allow_models=frozenset({"error_500-a"}))
    for _ in range(2):
        with pytest.raises(AllProvidersFailed):
            await c.complete(CompletionRequest(RouteRequest(prompt="hi", constraints=only)))
    assert c.health() == {"error_500-a": "circuit open"}
    with pytest.raises(ModelsUnavailable) as info:
        router.route("hi", constraints=only)
    assert info.value.status == "UNAVAILABLE" and info.value.models == ["error_500-a"]
    assert "good" not in info.value.message
    with pytest.raises(NoModelAvailable):
        router.route("hi", constraints=Constraints(allow_models=only.allow_models,
                                                   required_capabilities=frozenset({"vision"})))
    await c.aclose()


async def test_route_rpc_answers_unavailable_for_an_open_breaker(tmp_path: Path) -> None:
    """Over gRPC, Route for the only allowed model with an open breaker is UNAVAILABLE."""
    cfg = make_config({"error_500-a": model("error_500-a"), "good": model("good")},
                      resilience=BROKEN)
    app = App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / "f.db"))
    port = await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            only = pb.Constraints(allow_models=["error_500-a"])
            for _ in range(2):
                with pytest.raises(grpc.aio.AioRpcError):
                    await stub.Complete(pb.CompleteRequest(
                        route=pb.RouteRequest(prompt="hi", constraints=only)))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Route(pb.RouteRequest(prompt="hi", constraints=only))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "error_500-a" in (info.value.details() or "")
        assert "good" not in (info.value.details() or "")
    finally:
        await app.stop(0)
