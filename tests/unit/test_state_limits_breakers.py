"""Rate limits and circuit breakers: one contract, run over both backends (memory, real Redis)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from routecore.state.breakers import BreakerConfig, open_breakers
from routecore.state.limits import open_limits


def _name() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


async def test_rpm_bucket_refuses_then_refills(state_backend: Any) -> None:
    """Past its RPM a model waits (taking nothing) until the bucket refills over the minute."""
    limits, m = open_limits(state_backend), _name()
    for _ in range(2):
        assert await limits.acquire(m, 2, 0, 100) == 0.0
    wait = await limits.acquire(m, 2, 0, 100)
    assert wait == pytest.approx(30.0, rel=1e-6)  # one request back every 30 s at 2 RPM
    state_backend.clock.advance(29.0)
    assert await limits.acquire(m, 2, 0, 100) == pytest.approx(1.0, rel=1e-6)
    state_backend.clock.advance(1.0)
    assert await limits.acquire(m, 2, 0, 100) == 0.0
    assert await limits.acquire(_name(), 0, 0, 10**9) == 0.0  # 0: unlimited


async def test_tpm_refund_and_debt(state_backend: Any) -> None:
    """TPM takes all or nothing; a refund gives tokens back and extra usage runs into debt."""
    limits, m = open_limits(state_backend), _name()
    assert await limits.acquire(m, 0, 600, 500) == 0.0
    assert await limits.acquire(m, 0, 600, 200) == pytest.approx(10.0, rel=1e-6)
    await limits.correct(m, 0, 600, -400)  # 400 of the 500 were never used
    assert await limits.acquire(m, 0, 600, 450) == 0.0
    await limits.correct(m, 0, 600, 600)  # the real usage was larger: a debt
    assert await limits.acquire(m, 0, 600, 1) == pytest.approx((550 + 1) / 10, rel=1e-6)


async def test_breaker_opens_on_count_with_successes_between(state_backend: Any) -> None:
    """Failures inside the window open it even with successes between them; it then refuses."""
    b, k = open_breakers(state_backend, BreakerConfig(failure_threshold=3, window_s=10,
                                                      min_calls=100)), _name()
    for failed in (True, False, True, False):
        await b.record(k, failed)
    assert b.state(k) == "closed" and await b.allow(k)
    await b.record(k, True)
    assert b.state(k) == "open" and not await b.allow(k)


async def test_breaker_rate_rule_and_old_failures_expire(state_backend: Any) -> None:
    """A failure share over min_calls opens it; failures older than the window do not count."""
    b, k = open_breakers(state_backend, BreakerConfig(failure_threshold=100, window_s=10,
                                                      failure_rate=0.5, min_calls=4)), _name()
    await b.record(k, True)
    await b.record(k, True)
    state_backend.clock.advance(11)  # both failures leave the window
    for failed in (False, False, False, True):
        await b.record(k, failed)
    assert await b.allow(k) and b.state(k) == "closed"
    await b.record(k, True)  # 2 of 5 failed: under the rate
    assert b.state(k) == "closed"
    await b.record(k, True)  # 3 of 6
    assert b.state(k) == "open"


async def test_breaker_half_open_grants_one_probe(state_backend: Any) -> None:
    """After the cooldown one probe goes through; its failure reopens, its release frees the
    slot, its success closes."""
    b, k = open_breakers(state_backend, BreakerConfig(failure_threshold=1, cooldown_s=5)), _name()
    await b.record(k, True)
    state_backend.clock.advance(6)
    assert b.state(k) == "half_open"
    assert await b.allow(k) and not await b.allow(k)
    await b.record(k, True)
    assert b.state(k) == "open" and not await b.allow(k)
    state_backend.clock.advance(6)
    assert await b.allow(k)
    await b.release(k)
    assert await b.allow(k)
    await b.record(k, False)
    assert b.state(k) == "closed" and await b.allow(k)


async def test_disabled_breaker_never_opens(state_backend: Any) -> None:
    """enabled: false records nothing and refuses nothing."""
    b, k = open_breakers(state_backend, BreakerConfig(enabled=False, failure_threshold=1)), _name()
    await b.record(k, True)
    assert b.state(k) == "closed" and await b.allow(k)
