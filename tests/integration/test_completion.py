"""Complete and CompleteStream end to end over real HTTP to the standalone simulated upstream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest_complete import (
    FAST_RESILIENCE,
    FakeClock,
    RecordingSleep,
    make_config,
    model,
    router_for,
)

from routecore.calling.completion import Completer
from routecore.calling.deadline import Deadline
from routecore.calling.providers import ProviderCall, SimEngine, StreamChunk
from routecore.calling.providers.sim_server import SimServer
from routecore.calling.providers.simulated import SimulatedProvider
from routecore.calling.resilience import Resilience
from routecore.calling.types import CompletionRequest, StreamEvent
from routecore.config import Config
from routecore.domain import RouteRequest
from routecore.errors import AllProvidersFailed, DeadlineExceeded, StreamInterrupted

REQ = CompletionRequest(RouteRequest(prompt="Summarize the key points of this meeting."))

MODELS: dict[str, dict[str, Any]] = {
    "good": model("good", endpoint="up", price=(2.0, 8.0), quality=0.95),
    "error_500-a": model("error_500-a", endpoint="up"),
    "error_429-b": model("error_429-b", endpoint="up", sim={"retry_after_s": 0.3}),
    "context_overflow-c": model("context_overflow-c", endpoint="up"),
    "slow_2000": model("slow_2000", endpoint="up"),
    "timeout-d": model("timeout-d", endpoint="up"),
    "cut_stream": model("cut_stream", endpoint="up"),
    "claude": model("claude", endpoint="anth"),
    "two-deps": model("two-deps", endpoint="up",
                      deployments=[{"endpoint": "dead"}, {"endpoint": "up"}]),
}


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    eps = {n: {"kind": "simulated"} for n in ("up", "anth", "dead")}
    async with SimServer(make_config(MODELS, endpoints=eps)) as srv:
        yield srv


def client_config(srv: SimServer, resilience: dict[str, Any] | None = None,
                  models: dict[str, dict[str, Any]] = MODELS) -> Config:
    endpoints = {
        "up": {"kind": "openai", "base_url": srv.base_url, "timeout_s": 5},
        "anth": {"kind": "anthropic", "base_url": srv.base_url, "timeout_s": 5},
        "dead": {"kind": "openai", "base_url": "http://127.0.0.1:9", "timeout_s": 1},
    }
    return make_config(models, endpoints=endpoints, resilience=resilience or FAST_RESILIENCE)


def calls(srv: SimServer, model_id: str) -> int:
    state = srv.engine._state.get(model_id)
    return state.calls if state else 0


async def test_fallback_order_retries_then_next_model(sim: SimServer) -> None:
    """Failures walk decision.model then fallbacks in order, retrying each; one success ends it."""
    c = Completer(client_config(sim, {"retry": {"max_attempts": 1, "base_delay_ms": 1,
                                                "max_delay_ms": 2, "max_retry_after_ms": 10}}),
                  router_for("error_500-a", ["error_429-b", "good"]))
    r = await c.complete(REQ, Deadline.after(10))
    assert r.model == "good" and r.text and r.finish_reason == "stop"
    # 500 retried once; the 429's Retry-After (0.3 s) exceeds max_retry_after_ms: move on.
    assert [(a.model, a.retry, bool(a.error)) for a in r.attempts] == [
        ("error_500-a", 0, True), ("error_500-a", 1, True), ("error_429-b", 0, True),
        ("good", 0, False)]
    assert calls(sim, "good") == 1  # answered once, no duplicate upstream call
    assert r.cost_usd == pytest.approx(
        (r.usage.input_tokens * 2.0 + r.usage.output_tokens * 8.0) / 1e6)
    await c.aclose()


async def test_retry_after_is_honoured_over_http(sim: SimServer) -> None:
    """A 429's Retry-After is waited before the retry, and other requests skip the deployment."""
    sleep = RecordingSleep()
    cfg = client_config(sim, {"retry": {"max_attempts": 1, "base_delay_ms": 1, "max_delay_ms": 2}})
    c = Completer(cfg, router_for("error_429-b", ["good"]))
    c.resilience = Resilience(c.settings.resilience, sleep=sleep)
    r = await c.complete(REQ)
    assert sleep.delays and min(sleep.delays) >= 0.3
    assert r.model == "good" and calls(sim, "error_429-b") == 2
    r2 = await c.complete(REQ)  # within the Retry-After window: not called again
    assert r2.attempts[0].error.startswith("cooling down after 429")
    assert calls(sim, "error_429-b") == 2
    await c.aclose()


async def test_next_deployment_before_next_model(sim: SimServer) -> None:
    """A dead deployment (connection refused) fails over to the model's next deployment."""
    c = Completer(client_config(sim, {"retry": {"max_attempts": 0}}), router_for("two-deps"))
    r = await c.complete(REQ)
    assert r.model == "two-deps"
    assert [a.deployment for a in r.attempts] == ["dead/two-deps", "up/two-deps"]
    assert "connection" in r.attempts[0].error
    await c.aclose()


async def test_all_failed_carries_every_attempt(sim: SimServer) -> None:
    """When every candidate fails, AllProvidersFailed lists each attempt with its details."""
    c = Completer(client_config(sim), router_for("error_500-a", ["context_overflow-c"]))
    with pytest.raises(AllProvidersFailed) as err:
        await c.complete(REQ)
    got = [(a.model, a.retry) for a in err.value.attempts]
    assert got == [("error_500-a", 0), ("error_500-a", 1), ("error_500-a", 2),
                   ("context_overflow-c", 0)]
    assert all(a.provider == "up" and a.deployment and a.duration_ms > 0
               for a in err.value.attempts)
    assert "context_length_exceeded" in err.value.attempts[-1].error
    assert err.value.status == "UNAVAILABLE"
    await c.aclose()


async def test_deadline_bounds_the_whole_chain(sim: SimServer) -> None:
    """A slow upstream is cut at the caller's deadline: DeadlineExceeded, promptly."""
    c = Completer(client_config(sim), router_for("slow_2000", ["good"]))
    t0 = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await c.complete(REQ, Deadline.after(0.3))
    assert time.monotonic() - t0 < 1.0
    await c.aclose()


async def test_provider_timeout_falls_back(sim: SimServer) -> None:
    """An attempt hitting the endpoint timeout (not the deadline) falls back to the next model."""
    cfg = client_config(sim, {"retry": {"max_attempts": 0}})
    c = Completer(cfg, router_for("timeout-d", ["good"]))
    for p in c.providers.values():
        p.timeout_s = 0.2
    r = await c.complete(REQ, Deadline.after(5))
    assert r.model == "good" and "timed out" in r.attempts[0].error
    await c.aclose()


async def _collect(it: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [e async for e in it]


async def test_stream_fails_over_before_the_first_chunk(sim: SimServer) -> None:
    """Failures before the first chunk fail over; the last event has usage, cost and attempts."""
    c = Completer(client_config(sim), router_for("error_500-a", ["good"]))
    events = await _collect(c.stream(REQ, Deadline.after(5)))
    assert all(e.model == "good" for e in events)
    done = events[-1]
    assert done.done and done.usage and done.usage.output_tokens == len(events) - 1
    assert done.cost_usd > 0 and done.finish_reason == "stop"
    assert [a.model for a in done.attempts] == ["error_500-a"] * 3 + ["good"]
    await c.aclose()


async def test_stream_interrupted_after_first_chunk_never_truncates(sim: SimServer) -> None:
    """A stream cut after chunks reached the caller raises StreamInterrupted, with no fallback."""
    c = Completer(client_config(sim), router_for("cut_stream", ["good"]))
    got: list[str] = []
    with pytest.raises(StreamInterrupted):
        async for e in c.stream(REQ, Deadline.after(5)):
            assert not e.done
            got.append(e.delta)
    assert len(got) == 3 and calls(sim, "good") == 0
    await c.aclose()


async def test_anthropic_endpoint_complete_and_stream(sim: SimServer) -> None:
    """The Anthropic Messages provider answers and streams with the upstream's usage."""
    c = Completer(client_config(sim), router_for("claude"))
    r = await c.complete(REQ)
    events = await _collect(c.stream(REQ))
    assert "".join(e.delta for e in events) == r.text
    assert events[-1].usage == r.usage and r.usage.input_tokens > 0
    await c.aclose()


async def test_concurrent_requests_each_answered_once(sim: SimServer) -> None:
    """64 concurrent Completes over one pooled session all succeed with one call each."""
    c = Completer(client_config(sim), router_for("good"))
    results = await asyncio.gather(*(c.complete(REQ) for _ in range(64)))
    assert all(r.model == "good" and len(r.attempts) == 1 for r in results)
    assert calls(sim, "good") == 64
    await c.aclose()


class _EndsEarly(SimulatedProvider):
    """A provider whose stream yields two deltas and then simply stops (no end marker)."""

    async def stream(self, call: ProviderCall, timeout: float) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(delta="half")
        yield StreamChunk(delta=" an answer")


async def test_stream_ending_without_end_marker_is_an_interruption_on_the_breaker() -> None:
    """A stream that stops after chunks without its end marker raises StreamInterrupted, records
    the attempt and counts against the deployment's breaker."""
    cfg = make_config({"m": model("m"), "good": model("good")},
                      resilience={"breaker": {"failure_threshold": 1, "cooldown_s": 60}})
    c = Completer(cfg, router_for("m", ["good"]))
    c.providers["sim"] = _EndsEarly(cfg.endpoints["sim"], SimEngine(cfg))
    got: list[str] = []
    with pytest.raises(StreamInterrupted, match="end marker"):
        async for e in c.stream(REQ):
            got.append(e.delta)
    assert got == ["half", " an answer"]
    assert c.resilience.breakers.state("sim/m") == "open"
    await c.aclose()


async def test_stream_cut_over_http_opens_the_breaker_and_settles_tokens(sim: SimServer) -> None:
    """A mid-stream cut counts against the deployment's breaker and settles the TPM reservation
    to the tokens actually streamed, not the full output estimate."""
    models = {**MODELS, "cut_stream": model("cut_stream", endpoint="up", tpm=100_000)}
    cfg = client_config(sim, {"breaker": {"failure_threshold": 1, "cooldown_s": 60}}, models)
    c = Completer(cfg, router_for("cut_stream"))
    c.resilience = Resilience(c.settings.resilience, clock=FakeClock())  # no refill meanwhile
    with pytest.raises(StreamInterrupted):
        await _collect(c.stream(REQ, Deadline.after(5)))
    assert c.resilience.breakers.state("up/cut_stream") == "open"
    tpm = c.resilience.limits._buckets["cut_stream"][1]  # type: ignore[attr-defined]
    assert 0 < tpm.capacity - tpm.tokens < 100  # prompt + 3 streamed pieces, not + 512 reserved
    await c.aclose()
