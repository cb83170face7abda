"""Observed load (state/observed.py): one contract, run over both backends (memory, real Redis)."""

from __future__ import annotations

import math
import uuid
from typing import Any

import numpy as np
import pytest

from routecore.state.limits import open_limits
from routecore.state.observed import (
    N_BUCKETS,
    ObservedConfig,
    bucket_of,
    open_observed,
    percentiles,
)


def _name() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


async def _flushed(obs: Any) -> None:
    """Redis records go through a write-behind queue: wait until it is written."""
    writer = getattr(obs, "_writer", None)
    if writer is not None:
        await writer.aclose()


def test_buckets_and_percentiles() -> None:
    """Buckets are 10% wide; percentiles of a known spread come back within a bucket."""
    assert bucket_of(0.5) == 0 and bucket_of(float("nan")) == 0 and bucket_of(-3) == 0
    assert bucket_of(1e12) == N_BUCKETS - 1
    counts = np.zeros((3, N_BUCKETS))
    for ms in range(1, 1001):  # row 0: 1..1000 ms, uniform
        counts[0, bucket_of(float(ms))] += 1.0
    counts[2, bucket_of(5000.0)] = 3.0  # row 1 empty; row 2 one bucket
    total, (p50, p95) = percentiles(counts, (0.5, 0.95))
    assert total.tolist() == [1000.0, 0.0, 3.0]
    assert p50[0] == pytest.approx(500, rel=0.1) and p95[0] == pytest.approx(950, rel=0.1)
    assert math.isnan(p50[1]) and math.isnan(p95[1])
    assert p50[2] == pytest.approx(5000, rel=0.1) and p95[2] == pytest.approx(5000, rel=0.1)


async def test_percentiles_decay_and_recover(state_backend: Any) -> None:
    """Observed percentiles follow the calls; their weight halves every half-life, so after
    many half-lives the model has (almost) no observations left."""
    m = _name()
    obs = open_observed(state_backend, ObservedConfig(half_life_s=10.0), [m, "other"], {})
    for _ in range(20):
        obs.observe(m, 100.0)
    for _ in range(20):
        obs.observe(m, 2000.0)
    await _flushed(obs)
    snap = await obs.refresh()
    ml = snap.models[m]
    assert ml.calls == pytest.approx(40.0, rel=1e-6)
    assert 90 <= ml.p50_ms <= 2200 and ml.p95_ms == pytest.approx(2000, rel=0.1)
    assert "other" not in snap.models  # nothing seen, nothing limited: left out
    state_backend.clock.advance(10.0)
    assert (await obs.refresh()).models[m].calls == pytest.approx(20.0, rel=1e-6)
    state_backend.clock.advance(200.0)  # 20 more half-lives
    later = await obs.refresh()
    assert m not in later.models or later.models[m].calls < 1e-3
    assert later.version > snap.version
    await obs.aclose()


async def test_new_calls_outweigh_decayed_ones(state_backend: Any) -> None:
    """A model that got slow: once the slow calls outweigh the decayed fast ones, p50 is slow."""
    m = _name()
    obs = open_observed(state_backend, ObservedConfig(half_life_s=5.0), [m], {})
    for _ in range(10):
        obs.observe(m, 50.0)
    state_backend.clock.advance(15.0)  # the fast calls now weigh 10/8
    for _ in range(10):
        obs.observe(m, 3000.0)
    await _flushed(obs)
    ml = (await obs.refresh()).models[m]
    assert ml.calls == pytest.approx(10 + 10 / 8, rel=1e-6)
    assert ml.p50_ms == pytest.approx(3000, rel=0.1)
    await obs.aclose()


async def test_in_flight_counts(state_backend: Any) -> None:
    """Calls started and not finished are in flight; finished ones are not."""
    m = _name()
    obs = open_observed(state_backend, ObservedConfig(), [m], {})
    obs.started(m)
    obs.started(m)
    obs.finished(m)
    assert (await obs.refresh()).models[m].in_flight == 1
    obs.finished(m)
    obs.finished(m)  # an extra finish never goes below zero
    assert m not in (await obs.refresh()).models
    await obs.aclose()


async def test_rate_limit_headroom(state_backend: Any) -> None:
    """RPM/TPM left is what the buckets hold now, refilled over the minute, taken by nothing."""
    m = _name()
    limits = open_limits(state_backend)
    obs = open_observed(state_backend, ObservedConfig(), [m], {m: (2, 600)},
                        limits if hasattr(limits, "levels") else None)
    full = (await obs.refresh()).models[m]
    assert (full.rpm_left, full.tpm_left, full.rpm, full.tpm) == (2.0, 600.0, 2, 600)
    assert await limits.acquire(m, 2, 600, 500) == 0.0
    assert await limits.acquire(m, 2, 600, 50) == 0.0
    ml = (await obs.refresh()).models[m]
    assert ml.rpm_left == pytest.approx(0.0, abs=1e-6) and ml.tpm_left == pytest.approx(50.0)
    state_backend.clock.advance(30.0)  # one request and 300 tokens back
    ml = (await obs.refresh()).models[m]
    assert ml.rpm_left == pytest.approx(1.0) and ml.tpm_left == pytest.approx(350.0)
    await obs.aclose()


async def test_snapshot_never_waits(state_backend: Any) -> None:
    """`snapshot()` returns at once; a stale one starts a background rebuild that lands."""
    m = _name()
    obs = open_observed(state_backend, ObservedConfig(refresh_s=0.01), [m], {})
    obs.observe(m, 700.0)
    await _flushed(obs)
    first = obs.snapshot()  # empty: nothing read yet, the rebuild has started
    assert m not in first.models
    assert obs._task is not None
    await obs._task
    assert obs.snapshot().models[m].calls == pytest.approx(1.0)
    await obs.aclose()


async def test_replicas_share_observations(redis_url: str) -> None:
    """On Redis, one replica's calls and calls in flight are seen by another's snapshot."""
    from routecore.state import RedisBackend, StateConfig

    a = RedisBackend(StateConfig(backend="redis", redis_url=redis_url, timeout_s=5.0))
    b = RedisBackend(StateConfig(backend="redis", redis_url=redis_url, timeout_s=5.0))
    await a.start()
    await b.start()
    m = _name()
    try:
        oa = open_observed(a, ObservedConfig(), [m], {})
        ob = open_observed(b, ObservedConfig(), [m], {})
        for _ in range(5):
            oa.observe(m, 1234.0)
        oa.started(m)
        await _flushed(oa)
        await oa.refresh()  # publishes its calls in flight
        seen = (await ob.refresh()).models[m]
        assert seen.calls == pytest.approx(5.0, rel=1e-2)  # real seconds pass meanwhile
        assert seen.p50_ms == pytest.approx(1234.0, rel=0.1) and seen.in_flight == 1
        await oa.aclose()  # a replica that stops takes its calls in flight with it
        assert (await ob.refresh()).models[m].in_flight == 0
        await ob.aclose()
    finally:
        await a.aclose()
        await b.aclose()
