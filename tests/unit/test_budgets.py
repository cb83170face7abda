"""Budgets over both state backends (memory and a real Redis): caps, holds, views, config."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from routecore.errors import ConfigError, InvalidRequest, StateUnavailable
from routecore.state import RedisBackend, StateConfig
from routecore.state.budget import BudgetExceeded, Budgets, parse_budgets


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _budgets(backend: Any, **raw: Any) -> Budgets:
    return Budgets(parse_budgets(raw), backend)


async def test_reserve_refuses_what_does_not_fit_saying_what_is_left(state_backend: Any) -> None:
    """A hold past the daily cap is refused with the remaining budget and the reset time."""
    t = _name()
    b = _budgets(state_backend, tenants={t: {"usd_per_day": 1.0}})
    h = await b.reserve(t, "", "", 0.7, 100)
    assert h is not None
    with pytest.raises(BudgetExceeded) as info:
        await b.reserve(t, "", "", 0.4, 100)
    midnight = datetime.fromtimestamp(state_backend.clock(), UTC).strftime("%Y-%m-%d")
    msg = info.value.message
    assert f"tenant {t!r} usd_per_day has $0.300000 left of $1.000000" in msg
    assert "resets at " in msg and msg.endswith("T00:00:00Z") and midnight not in msg
    assert info.value.status == "RESOURCE_EXHAUSTED"
    await b.settle(h, 0.2, 50)  # the call cost less than its worst case: the rest is free again
    assert await b.reserve(t, "", "", 0.8, 100) is not None
    assert (b.reserved, b.refused, b.settled) == (2, 1, 1)


async def test_every_cap_on_the_caller_applies(state_backend: Any) -> None:
    """Tenant, user and key caps all hold; the default covers unlisted tenants only."""
    t, other = _name(), _name()
    b = _budgets(state_backend, tenants={t: {"usd_per_month": 10}},
                 users={"alice": {"tokens_per_day": 1000}}, keys={"k1": {"usd_per_day": 0.5}},
                 default={"usd_per_day": 0.01})
    assert await b.reserve(t, "bob", "", 5.0, 5000) is not None  # no user or key cap on bob
    with pytest.raises(BudgetExceeded, match="user 'alice' tokens_per_day"):
        await b.reserve(t, "alice", "", 0.1, 1001)
    with pytest.raises(BudgetExceeded, match="key 'k1' usd_per_day"):
        await b.reserve(t, "", "k1", 0.6, 10)
    with pytest.raises(BudgetExceeded, match=f"tenant {other!r} usd_per_day"):
        await b.reserve(other, "", "", 0.02, 10)
    assert await b.reserve(_name(), "", "", 0.0, 10**9) is not None  # default has no token cap
    assert await b.reserve("", "", "", 0.01, 1) is not None  # no identity: the default tenant


async def test_status_reports_every_window(state_backend: Any) -> None:
    """GetBudget's data: spent, reserved, limit, remaining and reset per cap."""
    t = _name()
    b = _budgets(state_backend, tenants={t: {"usd_per_day": 2, "usd_per_month": 30,
                                             "tokens_per_day": 100}})
    h = await b.reserve(t, "", "", 0.5, 40)
    assert h is not None
    await b.settle(h, 0.25, 30)
    await b.reserve(t, "", "", 0.5, 40)
    rows = {w.limit_name: w for w in await b.status(t)}
    day = rows["usd_per_day"]
    assert (day.spent, day.reserved, day.limit, day.remaining) == (0.25, 0.5, 2.0, 1.25)
    assert rows["usd_per_month"].period == day.period[:7] and rows["usd_per_month"].resets_at > 0
    assert (rows["tokens_per_day"].spent, rows["tokens_per_day"].remaining) == (30, 30)
    assert await b.status(_name()) == []  # no cap on an unlisted tenant without a default


async def test_view_paces_past_the_start(state_backend: Any) -> None:
    """The router's view: no pacing below pacing.start, rising to 1 at the cap."""
    t = _name()
    b = _budgets(state_backend, tenants={t: {"usd_per_day": 1}}, pacing={"start": 0.5})
    await b.status(t)  # Redis: the first read fills the snapshot Route reads
    v = b.view(t)
    assert v is not None and (v.share_used, v.pacing, v.remaining_usd) == (0.0, 0.0, 1.0)
    h = await b.reserve(t, "", "", 0.75, 0)
    assert h is not None
    v = b.view(t)
    assert v is not None and v.share_used == 0.75 and v.pacing == pytest.approx(0.5)
    assert v.cap == f"tenant {t!r} usd_per_day" and v.remaining_usd == pytest.approx(0.25)
    await b.settle(h, 1.0, 0)
    v = b.view(t)
    assert v is not None and v.pacing == 1.0
    assert b.view(_name()) is None
    await b.aclose()


async def test_reservations_expire(state_backend: Any) -> None:
    """A hold that nobody settles (a crashed replica) is dropped after reservation_ttl_s."""
    t = _name()
    b = _budgets(state_backend, tenants={t: {"usd_per_day": 1}}, reservation_ttl_s=60)
    assert await b.reserve(t, "", "", 1.0, 0) is not None
    with pytest.raises(BudgetExceeded):
        await b.reserve(t, "", "", 0.1, 0)
    state_backend.clock.advance(61)
    assert await b.reserve(t, "", "", 1.0, 0) is not None


async def test_hostile_names_are_bounded(state_backend: Any) -> None:
    """A tenant name longer than 256 characters is INVALID_ARGUMENT, not a huge key."""
    b = _budgets(state_backend, default={"usd_per_day": 1})
    with pytest.raises(InvalidRequest, match="tenant: at most 256"):
        await b.reserve("x" * 10_000, "", "", 0.1, 1)


async def test_redis_down_fails_closed_unless_fail_open() -> None:
    """With Redis unreachable, a budgeted call is UNAVAILABLE saying why; fail_open lets it by."""
    from services import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    for fail_open in (False, True):
        backend = RedisBackend(StateConfig("redis", url, fail_open=fail_open, timeout_s=0.2))
        await backend.start()
        b = _budgets(backend, default={"usd_per_day": 1})
        try:
            if fail_open:
                assert await b.reserve("t", "", "", 0.1, 1) is None
            else:
                with pytest.raises(StateUnavailable, match=r"budgets fail closed.*fail_open"):
                    await b.reserve("t", "", "", 0.1, 1)
            assert b.failures == 1 and backend.failures == 2  # the start-up ping, the reserve
            assert b.view("t") is None  # routing goes on without budgets
        finally:
            await b.aclose()
            await backend.aclose()


@pytest.mark.parametrize(("raw", "msg"), [
    ({"tenants": {"acme": {"usd_per_day": -1}}}, "budgets.tenants.acme.usd_per_day: must be >= 0"),
    ({"users": {"al": {"usd_per_week": 1}}}, "budgets.users.al.usd_per_week: unknown field"),
    ({"keys": {"k": {}}}, "budgets.keys.k: must set at least one of"),
    ({"default": {"tokens_per_day": 1.5}}, "budgets.default.tokens_per_day: must be a int"),
    ({"pacing": {"start": 1.5}}, "budgets.pacing.start: must be <= 1"),
    ({"tenants": {"a": {"usd_per_day": float("nan")}}}, "usd_per_day: must be a finite number"),
    ({"tenants": []}, "budgets.tenants: must be a mapping"),
    ({"limits": {}}, "budgets.limits: unknown field"),
])
def test_config_errors_name_the_field(raw: dict[str, Any], msg: str) -> None:
    """Each budgets config mistake is reported with its exact path."""
    with pytest.raises(ConfigError, match=msg):
        parse_budgets(raw)
    assert not parse_budgets(None).enabled


async def test_a_cancelled_reserve_gives_its_hold_back(redis_url: str) -> None:
    """A caller cancelled while Redis takes its hold (client gone) does not hold budget until
    the reservation expires: the hold is released as soon as the script answers."""
    from routecore.state.ledger import RedisLedger

    class LateLedger(RedisLedger):  # the real script, its answer arriving late
        async def reserve(self, *args: Any, **kw: Any) -> tuple[int, list[int]]:
            out = await super().reserve(*args, **kw)
            await asyncio.sleep(0.05)
            return out

    backend = RedisBackend(StateConfig("redis", redis_url, timeout_s=5))
    await backend.start()
    t = _name()
    b = _budgets(backend, tenants={t: {"usd_per_day": 1}})
    b.ledger = LateLedger(backend)
    try:
        call = asyncio.ensure_future(b.reserve(t, "", "", 0.5, 1))
        await asyncio.sleep(0.02)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await b.aclose()
        (w,) = await b.status(t)
        assert (w.spent, w.reserved) == (0.0, 0.0)
    finally:
        await b.aclose()
        await backend.aclose()


def test_key_caps_must_name_real_api_keys() -> None:
    """budgets.keys naming an unknown key id, or set with auth off, is a config error by name."""
    from routecore.state.budget import check_keys

    cfg = parse_budgets({"keys": {"ci": {"usd_per_day": 1}, "typo": {"usd_per_day": 1}}})
    check_keys(cfg, {"ci", "typo", "other"})
    with pytest.raises(ConfigError, match=r"budgets\.keys\.typo: no API key with this id") as info:
        check_keys(cfg, {"ci"})
    assert len(info.value.problems) == 1
    with pytest.raises(ConfigError, match=r"budgets\.keys\.ci: needs auth\.keys"):
        check_keys(cfg, None)
    check_keys(parse_budgets({"default": {"usd_per_day": 1}}), None)


async def test_windows_are_utc_calendar_periods(state_backend: Any) -> None:
    """A day's spend stops counting at the next UTC midnight; the month's at the next month."""
    import calendar

    state_backend.clock.now = calendar.timegm((2027, 3, 15, 12, 0, 0))  # a future mid-month noon
    t = _name()
    b = _budgets(state_backend, tenants={t: {"usd_per_day": 1, "usd_per_month": 1.5}})
    h = await b.reserve(t, "", "", 1.0, 0)
    assert h is not None
    await b.settle(h, 1.0, 0)
    with pytest.raises(BudgetExceeded, match=r"usd_per_day.*resets at 2027-03-16T00:00:00Z"):
        await b.reserve(t, "", "", 0.1, 0)
    state_backend.clock.now = calendar.timegm((2027, 3, 16, 0, 0, 1))
    rows = {w.limit_name: w for w in await b.status(t)}
    assert (rows["usd_per_day"].period, rows["usd_per_day"].spent) == ("2027-03-16", 0)
    assert (rows["usd_per_month"].period, rows["usd_per_month"].spent) == ("2027-03", 1.0)
    with pytest.raises(BudgetExceeded, match=r"usd_per_month.*resets at 2027-04-01T00:00:00Z"):
        await b.reserve(t, "", "", 0.6, 0)
    state_backend.clock.now = calendar.timegm((2027, 4, 1, 0, 0, 0))
    assert await b.reserve(t, "", "", 1.0, 0) is not None
