"""Retry/backoff, circuit breaker, rate limits, load ordering and deadlines."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from conftest_complete import FakeClock, RecordingSleep, make_config, model, router_for

from routecore.calling.completion import Completer
from routecore.calling.deadline import Deadline
from routecore.calling.resilience import (
    BreakerConfig,
    CircuitBreaker,
    RateLimiter,
    Resilience,
    ResilienceConfig,
    RetryConfig,
    RetryPolicy,
    TokenBucket,
)
from routecore.calling.types import CompletionRequest
from routecore.domain import RouteRequest
from routecore.errors import (
    AllProvidersFailed,
    ConfigError,
    DeadlineExceeded,
    ProviderError,
    ResourceExhausted,
)

REQ = CompletionRequest(RouteRequest(prompt="What is the capital of France?"))


def _res(retry: RetryConfig | None = None, breaker: BreakerConfig | None = None,
         clock: FakeClock | None = None, sleep: RecordingSleep | None = None) -> Resilience:
    cfg = ResilienceConfig(retry=retry or RetryConfig(), breaker=breaker or BreakerConfig())
    return Resilience(cfg, clock=clock or time.monotonic, sleep=sleep or RecordingSleep(),
                      rng=random.Random(7))


async def test_retry_count_and_exponential_full_jitter_backoff() -> None:
    """A retryable failure is retried max_attempts times with delays in [0, min(max, base*2^n)]."""
    sleep = RecordingSleep()
    res = _res(RetryConfig(max_attempts=3, base_delay_ms=100, max_delay_ms=250), sleep=sleep)
    calls: list[int] = []
    seen: list[int] = []

    async def fail(_t: float) -> str:
        calls.append(1)
        raise ProviderError("boom", kind="server")

    with pytest.raises(ProviderError):
        await res.call("d", fail, timeout=1.0, deadline=Deadline.none(),
                       on_attempt=lambda r, e, ms: seen.append(r))
    assert len(calls) == 4 and seen == [0, 1, 2, 3]
    caps = [0.1, 0.2, 0.25]
    assert len(sleep.delays) == 3
    assert all(0.0 <= d <= cap for d, cap in zip(sleep.delays, caps, strict=True))


async def test_non_retryable_error_is_not_retried() -> None:
    """A non-retryable error (context overflow) gives up the deployment after one try."""
    sleep = RecordingSleep()
    res = _res(RetryConfig(max_attempts=5), sleep=sleep)
    calls = 0

    async def overflow(_t: float) -> str:
        nonlocal calls
        calls += 1
        raise ProviderError("too long", retryable=False, kind="context_overflow")

    with pytest.raises(ProviderError):
        await res.call("d", overflow, timeout=1.0, deadline=Deadline.none(),
                       on_attempt=lambda *a: None)
    assert calls == 1 and sleep.delays == []


async def test_retry_after_is_honoured_as_a_floor() -> None:
    """A 429's Retry-After is waited at least, even when the jittered backoff is shorter."""
    sleep = RecordingSleep()
    res = _res(RetryConfig(max_attempts=1, base_delay_ms=1, max_delay_ms=2), sleep=sleep)
    n = 0

    async def limited(_t: float) -> str:
        nonlocal n
        n += 1
        if n == 1:
            raise ProviderError("429", retry_after=0.75, http_status=429, kind="rate_limit")
        return "ok"

    assert await res.call("d", limited, timeout=1.0, deadline=Deadline.none(),
                          on_attempt=lambda *a: None) == "ok"
    assert sleep.delays == [0.75]


def test_retry_after_longer_than_cap_moves_on() -> None:
    """A Retry-After beyond max_retry_after_ms gives up this deployment instead of waiting."""
    pol = RetryPolicy(RetryConfig(max_attempts=3, max_retry_after_ms=1000))
    err = ProviderError("429", retry_after=5.0, kind="rate_limit")
    assert pol.delay(0, err) is None


async def test_retry_stops_when_backoff_would_pass_the_deadline() -> None:
    """No retry is attempted when the backoff delay would not fit in the remaining deadline."""
    sleep = RecordingSleep()
    res = _res(RetryConfig(max_attempts=3), sleep=sleep)

    async def limited(_t: float) -> str:
        raise ProviderError("429", retry_after=2.0, kind="rate_limit")

    with pytest.raises(ProviderError):
        await res.call("d", limited, timeout=1.0, deadline=Deadline.after(0.5),
                       on_attempt=lambda *a: None)
    assert sleep.delays == []


def test_breaker_opens_half_opens_with_one_probe_and_closes() -> None:
    """Threshold failures in the window open it; after cooldown one probe; success closes."""
    clock = FakeClock()
    b = CircuitBreaker(BreakerConfig(failure_threshold=3, window_s=10, cooldown_s=5), clock)
    for _ in range(2):
        b.record_failure()
    assert b.state == "closed" and b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow()
    clock.advance(5.1)
    assert b.state == "half_open"
    assert b.allow() is True
    assert b.allow() is False  # only one probe at a time
    b.record_success()
    assert b.state == "closed" and b.allow()


def test_breaker_probe_failure_reopens_and_old_failures_expire() -> None:
    """A failed probe reopens the breaker; failures older than window_s do not count."""
    clock = FakeClock()
    b = CircuitBreaker(BreakerConfig(failure_threshold=2, window_s=1, cooldown_s=5), clock)
    b.record_failure()
    clock.advance(2)
    b.record_failure()
    assert b.state == "closed"
    b.record_failure()
    assert b.state == "open"
    clock.advance(6)
    assert b.allow()
    b.record_failure()
    assert b.state == "open" and not b.allow()


async def test_breaker_with_a_single_deployment_skips_to_the_next_model() -> None:
    """With one deployment per model, an open breaker makes later requests go straight to the
    fallback model without calling the broken upstream."""
    cfg = make_config({"error_500-a": model("error_500-a"), "good": model("good")},
                      resilience={"retry": {"max_attempts": 0},
                                  "breaker": {"failure_threshold": 2, "cooldown_s": 60}})
    c = Completer(cfg, router_for("error_500-a", ["good"]))
    for _ in range(2):
        r = await c.complete(REQ)
        assert r.model == "good" and r.attempts[0].error.startswith("sim: HTTP 500")
    r = await c.complete(REQ)
    assert r.model == "good"
    assert r.attempts[0].error == "circuit open" and r.attempts[0].duration_ms == 0.0
    assert c.health() == {"error_500-a": "circuit open"}
    await c.aclose()


def test_token_bucket_refills_over_a_minute() -> None:
    """An RPM bucket of 60 allows 60 at once, then one more per second."""
    clock = FakeClock()
    b = TokenBucket(60, clock)
    for _ in range(60):
        assert b.wait_for(1) == 0.0
        b.take(1)
    assert b.wait_for(1) == pytest.approx(1.0)
    clock.advance(1.0)
    assert b.wait_for(1) == 0.0


def test_rate_limiter_checks_rpm_and_tpm_together() -> None:
    """A request is admitted only when both its request and its tokens fit."""
    clock = FakeClock()
    rl = RateLimiter(clock)
    assert rl.try_acquire("m", 10, 1000, 600) == 0.0
    wait = rl.try_acquire("m", 10, 1000, 600)
    assert wait > 0  # tokens exhausted though requests remain
    clock.advance(wait)
    assert rl.try_acquire("m", 10, 1000, 600) == 0.0


async def test_client_side_rate_limit_falls_back_then_exhausts() -> None:
    """Past its RPM a model is skipped for the fallback; with no fallback: RESOURCE_EXHAUSTED."""
    cfg = make_config({"small": model("small", rpm=1), "other": model("other")})
    c = Completer(cfg, router_for("small", ["other"]))
    assert (await c.complete(REQ)).model == "small"
    r = await c.complete(REQ)
    assert r.model == "other" and "rate limited (client-side)" in r.attempts[0].error
    only = Completer(cfg, router_for("small"))
    await only.complete(REQ)
    with pytest.raises(ResourceExhausted):
        await only.complete(REQ)
    await c.aclose()
    await only.aclose()


def test_load_order_prefers_fast_and_idle_deployments() -> None:
    """Deployments are ordered by EWMA latency x (in-flight + 1) / weight; weight 0 goes last."""
    res = _res()
    res.stats("slow").ewma_ms = 100.0
    res.stats("fast").ewma_ms = 10.0
    assert res.order(["slow", "fast"], [1.0, 1.0]) == [1, 0]
    res.stats("fast").in_flight = 20
    assert res.order(["slow", "fast"], [1.0, 1.0]) == [0, 1]
    assert res.order(["slow", "fast", "drained"], [1.0, 1.0, 0.0])[-1] == 2


async def test_attempt_runs_under_the_deadline() -> None:
    """An attempt is cut at the remaining deadline (not the longer provider timeout)."""
    res = _res()

    async def hang(_t: float) -> str:
        await asyncio.sleep(10)
        return "late"

    t0 = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await res.call("d", hang, timeout=30.0, deadline=Deadline.after(0.05),
                       on_attempt=lambda *a: None)
    assert time.monotonic() - t0 < 1.0


def test_deadline_attempt_timeout_is_min_of_provider_and_remaining() -> None:
    """attempt_timeout = min(provider timeout, remaining); an expired deadline raises."""
    clock = FakeClock()
    d = Deadline.after(2.0, clock)
    assert d.attempt_timeout(10.0) == pytest.approx(2.0)
    assert d.attempt_timeout(0.5) == 0.5
    assert Deadline.none().attempt_timeout(7.0) == 7.0
    clock.advance(3.0)
    with pytest.raises(DeadlineExceeded):
        d.attempt_timeout(1.0)


def test_resilience_config_errors_name_exact_paths() -> None:
    """Invalid resilience settings raise ConfigError lines naming the exact field."""
    with pytest.raises(ConfigError) as err:
        Completer(make_config({"m": model("m")},
                              resilience={"retry": {"max_attempts": -1, "bogus": 1},
                                          "breaker": {"cooldown_s": -2}}), router_for("m"))
    problems = err.value.problems
    assert "resilience.retry.max_attempts: must be >= 0" in problems
    assert any(p.startswith("resilience.retry.bogus: unknown field") for p in problems)
    assert "resilience.breaker.cooldown_s: must be >= 0" in problems


async def test_timeout_cut_by_the_callers_deadline_is_not_a_deployment_failure() -> None:
    """An attempt cut by the caller's (shorter) deadline leaves the breaker closed, while one cut
    by the provider's own timeout counts as a failure."""
    res = _res(RetryConfig(max_attempts=0), BreakerConfig(failure_threshold=1, cooldown_s=60))

    async def hang(_t: float) -> str:
        await asyncio.sleep(10)
        return "late"

    with pytest.raises(DeadlineExceeded):
        await res.call("d", hang, timeout=30.0, deadline=Deadline.after(0.02),
                       on_attempt=lambda *a: None)
    assert res.breakers.state("d") == "closed"
    with pytest.raises(ProviderError) as err:
        await res.call("d", hang, timeout=0.02, deadline=Deadline.after(30),
                       on_attempt=lambda *a: None)
    assert err.value.kind == "timeout" and res.breakers.state("d") == "open"


async def test_an_attempt_cut_by_the_callers_time_is_reported_as_deadline() -> None:
    """The attempt hook hears kind "deadline" when the caller's time (its deadline, or this
    deployment's share of it) cut the try, and "timeout" only for the upstream's own timeout:
    a client with tight deadlines must not make a version look failing (a quality-regression
    error signal) nor fast (a latency sample of its cut)."""
    res = _res(RetryConfig(max_attempts=1))
    heard: list[str] = []
    tries = 0

    def hook(_retry: int, error: BaseException | None, _ms: float) -> None:
        heard.append(getattr(error, "kind", "") or "error")

    async def hang(_t: float) -> str:
        await asyncio.sleep(10)
        return "late"

    async def fail_then_hang(_t: float) -> str:
        nonlocal tries
        tries += 1
        if tries == 1:
            raise ProviderError("boom", kind="server")
        return await hang(_t)

    with pytest.raises(DeadlineExceeded):
        await res.call("d", hang, timeout=30.0, deadline=Deadline.after(0.02), on_attempt=hook)
    with pytest.raises(ProviderError) as err:  # the retry: this deployment's share ran out
        await res.call("d", fail_then_hang, timeout=30.0, deadline=Deadline.after(30),
                       share=Deadline.after(0.05), on_attempt=hook)
    assert err.value.kind == "deadline"
    with pytest.raises(ProviderError):
        await res.call("e", hang, timeout=0.02, deadline=Deadline.after(30), on_attempt=hook)
    assert heard == ["deadline", "server", "deadline", "timeout", "timeout"]


async def test_half_open_probe_cut_by_the_deadline_lets_the_next_probe_through() -> None:
    """A half-open probe cut by the caller's deadline gives the probe slot back."""
    clock = FakeClock()
    res = Resilience(ResilienceConfig(retry=RetryConfig(max_attempts=0),
                                      breaker=BreakerConfig(failure_threshold=1, cooldown_s=5)),
                     clock=clock, sleep=RecordingSleep())
    await res.breakers.record("d", failed=True)
    clock.advance(6)

    async def hang(_t: float) -> str:
        clock.advance(1.0)  # the deadline passes while the probe hangs
        raise TimeoutError

    with pytest.raises(DeadlineExceeded):
        await res.call("d", hang, timeout=30.0, deadline=Deadline.after(0.5, clock),
                       on_attempt=lambda *a: None)
    assert res.breakers.state("d") == "half_open" and await res.breakers.allow("d")


async def test_failed_model_gives_back_its_rate_limit_reservation() -> None:
    """A model that fails returns its TPM reservation (and its RPM slot when no upstream call was
    made), so a later request is not refused client-side for tokens nobody used."""
    clock = FakeClock()
    cfg = make_config({"flaky_1-m": model("flaky_1-m", tpm=600), "other": model("other")},
                      resilience={"retry": {"max_attempts": 0}})
    c = Completer(cfg, router_for("flaky_1-m", ["other"]))
    c.resilience = Resilience(c.settings.resilience, clock=clock, sleep=RecordingSleep())
    first = await c.complete(REQ)  # the reservation (prompt + 512 output) fits once in 600 TPM
    assert first.model == "other" and "HTTP 500" in first.attempts[0].error
    second = await c.complete(REQ)
    assert second.model == "flaky_1-m", second.attempts
    rpm = make_config({"m": model("m", rpm=1), "other": model("other")})
    c2 = Completer(rpm, router_for("m", ["other"]), providers={})  # no upstream reachable
    with pytest.raises(AllProvidersFailed):
        await c2.complete(REQ)
    assert await c2.resilience.limits.acquire("m", 1, 0, 1) == 0.0  # the RPM slot came back
    await c.aclose()


async def test_rate_limit_waits_add_up_to_at_most_max_wait() -> None:
    """Successive client-side rate-limit waits for one request stop at max_wait_ms in total."""
    clock = FakeClock()
    sleep = RecordingSleep()
    cfg = make_config({"m": model("m", rpm=60)},
                      resilience={"rate_limit": {"max_wait_ms": 1500}})
    c = Completer(cfg, router_for("m"))
    c.resilience = Resilience(c.settings.resilience, clock=clock, sleep=sleep)
    for _ in range(60):
        await c.resilience.limits.acquire("m", 60, 0, 1)

    async def contended(seconds: float) -> None:  # another request takes each refilled slot
        await sleep(seconds)
        clock.advance(seconds)
        await c.resilience.limits.acquire("m", 60, 0, 1)

    c.resilience.sleep = contended
    with pytest.raises(ResourceExhausted):
        await c.complete(REQ)
    assert sleep.delays and sum(sleep.delays) <= 1.5
    await c.aclose()


def test_weights_are_traffic_shares_among_equally_loaded_deployments() -> None:
    """0.9/0.1 weights send 900 of 1000 picks (+-1) to the first, interleaved; a deployment
    overloaded for its weight leaves the share."""
    res = _res()
    firsts = [res.order(["a", "b"], [0.9, 0.1])[0] for _ in range(1000)]
    assert abs(firsts.count(0) - 900) <= 1
    assert 1 in firsts[:10]  # interleaved, not 900 in a row
    res.stats("a").in_flight = 2
    assert res.order(["a", "b"], [0.5, 0.5]) == [1, 0]
