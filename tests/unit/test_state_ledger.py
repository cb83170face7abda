"""The budget ledger's contract, run over both backends (memory and a real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from routecore.config import parse_config
from routecore.errors import ConfigError, StateUnavailable
from routecore.state import RedisBackend, StateConfig, parse_state
from routecore.state.backend import tag
from routecore.state.ledger import Counter, open_ledger


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _counters(limit: int = 100, tokens: int = -1) -> list[Counter]:
    far = 4_000_000_000
    return [Counter("t:usd:day:2026-11-30", limit, far), Counter("t:tok:day:2026-11-30", tokens, far)]


async def test_hold_fits_then_refuses_and_names_the_counter(state_backend: Any) -> None:
    """A hold is taken only while spent + reserved + amount fits every capped counter."""
    ledger, t = open_ledger(state_backend), _tenant()
    cs = _counters(100, 50)
    until = state_backend.clock() + 60
    assert await ledger.reserve(t, "a", cs, [60, 10], until) == (-1, [60, 10])
    refused, used = await ledger.reserve(t, "b", cs, [41, 10], until)
    assert (refused, used) == (0, [60, 10])
    refused, used = await ledger.reserve(t, "c", cs, [40, 41], until)
    assert (refused, used) == (1, [60, 10])
    assert await ledger.reserve(t, "d", cs, [40, 40], until) == (-1, [100, 50])
    assert await ledger.read(t, cs) == [(0, 100), (0, 50)]


async def test_settle_replaces_the_hold_with_the_actual_amount(state_backend: Any) -> None:
    """Settling releases the hold and adds what was really spent, once."""
    ledger, t = open_ledger(state_backend), _tenant()
    cs = _counters(100)
    await ledger.reserve(t, "a", cs, [60, 7], state_backend.clock() + 60)
    assert await ledger.settle(t, "a", cs, [25, 5]) == [25, 5]
    assert await ledger.read(t, cs) == [(25, 0), (5, 0)]
    assert (await ledger.reserve(t, "b", cs, [75, 0], state_backend.clock() + 60))[0] == -1
    assert (await ledger.reserve(t, "c", cs, [1, 0], state_backend.clock() + 60))[0] == 0


async def test_expired_holds_are_released(state_backend: Any) -> None:
    """A hold never settled (a crashed replica) stops counting once it expires."""
    ledger, t = open_ledger(state_backend), _tenant()
    cs = _counters(100)
    await ledger.reserve(t, "lost", cs, [90, 0], state_backend.clock() + 30)
    assert (await ledger.reserve(t, "b", cs, [20, 0], state_backend.clock() + 30))[0] == 0
    state_backend.clock.advance(31)
    assert await ledger.read(t, cs) == [(0, 0), (0, 0)]
    assert (await ledger.reserve(t, "b", cs, [20, 0], state_backend.clock() + 30))[0] == -1
    # A late settle of the expired hold still charges what was spent, without a double release.
    assert await ledger.settle(t, "lost", cs, [50, 0]) == [70, 0]


async def test_tenants_are_separate(state_backend: Any) -> None:
    """One tenant's spend never counts against another's, whatever characters the names hold."""
    ledger = open_ledger(state_backend)
    a, b = _tenant() + "}:{x", _tenant()
    cs = _counters(10)
    assert (await ledger.reserve(a, "1", cs, [10, 0], state_backend.clock() + 60))[0] == -1
    assert (await ledger.reserve(b, "1", cs, [10, 0], state_backend.clock() + 60))[0] == -1
    assert await ledger.read(b, cs) == [(0, 10), (0, 0)]


async def test_concurrent_holds_never_exceed_the_cap(state_backend: Any) -> None:
    """Many concurrent reservations: exactly as many fit as the cap allows."""
    ledger, t = open_ledger(state_backend), _tenant()
    cs = _counters(1000)
    until = state_backend.clock() + 60
    results = await asyncio.gather(*(ledger.reserve(t, f"r{i}", cs, [7, 0], until)
                                     for i in range(200)))
    assert sum(1 for r, _ in results if r == -1) == 1000 // 7
    assert (await ledger.read(t, cs))[0] == (0, 1000 // 7 * 7)


async def test_redis_keys_carry_the_tenant_tag_and_a_ttl(redis_url: str) -> None:
    """Redis keys are rc:{tenant}:budget:... and each one expires."""
    backend = RedisBackend(StateConfig(backend="redis", redis_url=redis_url))
    await backend.start()
    try:
        ledger, t = open_ledger(backend), _tenant()
        now = backend.clock()
        cs = [Counter("t:usd:day:x", 100, int(now) + 3600)]
        await ledger.reserve(t, "a", cs, [5], now + 60)
        keys = sorted(k.decode() for k in await backend.client.keys(f"rc:{{{tag(t)}}}:*"))
        assert keys == [f"rc:{{{t}}}:budget:{n}" for n in ("holdamts", "holds", "t:usd:day:x")]
        for k in keys:
            assert 0 < await backend.client.ttl(k) <= 3600 + 60 + 3600
    finally:
        await backend.aclose()


async def test_redis_start_warns_nothing(redis_url: str) -> None:
    """`serve` with state.backend redis printed redis-py's UserWarning (a sync Retry on an asyncio pool)."""
    import warnings

    backend = RedisBackend(StateConfig(backend="redis", redis_url=redis_url))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await backend.start()
    try:
        assert backend.failures == 0
        assert await backend.client.ping()
    finally:
        await backend.aclose()


async def test_redis_down_is_unavailable_logged_and_counted() -> None:
    """With no Redis listening, an operation raises StateUnavailable and bumps the counter."""
    from services import free_port

    backend = RedisBackend(StateConfig(backend="redis", redis_url=f"redis://127.0.0.1:{free_port()}/0",
                                       timeout_s=0.2))
    await backend.start()
    try:
        assert backend.failures == 1
        with pytest.raises(StateUnavailable, match="redis"):
            await open_ledger(backend).read("t", _counters())
        assert backend.failures == 2
    finally:
        await backend.aclose()


def test_state_config_names_the_field() -> None:
    """The state section is validated with messages naming the exact field."""
    assert parse_state(None) == StateConfig()
    cfg = parse_state({"backend": "redis", "redis_url": "redis://h:1/0", "fail_open": True})
    assert cfg.backend == "redis" and cfg.fail_open
    for raw, msg in [({"backend": "etcd"}, "state.backend: must be one of memory, redis"),
                     ({"backend": "redis"}, "state.redis_url: is required"),
                     ({"redis_url": "http://x"}, "state.redis_url: must start with"),
                     ({"fail_open": "yes"}, "state.fail_open: must be a bool"),
                     ({"timeout_s": float("inf")}, "state.timeout_s: must be a finite number"),
                     ({"max_connections": 0}, "state.max_connections: must be >= 1"),
                     ({"colour": 1}, "state.colour: unknown field")]:
        with pytest.raises(ConfigError, match=msg):
            parse_state(raw)


def test_state_is_an_accepted_top_level_section() -> None:
    """A config with a state section loads (its contents are validated by parse_state)."""
    from importlib import resources

    import yaml

    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["state"] = {"backend": "memory"}
    assert parse_config(raw).extra["state"] == {"backend": "memory"}


def test_several_workers_on_memory_are_told_state_is_per_process() -> None:
    """serve --workers N > 1 with the memory backend warns that state is per process."""
    from routecore.state.backend import per_process_warning

    msg = per_process_warning(StateConfig(), 2)
    assert msg is not None and "budgets, rate limits and feedback are per process" in msg
    assert per_process_warning(StateConfig(), 1) is None
    assert per_process_warning(StateConfig("redis", "redis://h:1/0"), 4) is None


async def test_memory_ledger_keeps_nothing_per_tenant_once_settled() -> None:
    """Settled holds leave no per-tenant entry behind (many one-off tenants do not add up)."""
    from routecore.state import MemoryBackend
    from routecore.state.ledger import MemoryLedger

    ledger = MemoryLedger(MemoryBackend())
    for i in range(100):
        await ledger.reserve(f"t{i}", "r", _counters(), [1, 1], ledger.clock() + 60)
        await ledger.settle(f"t{i}", "r", _counters(), [1, 1])
    assert ledger._holds == {}
