"""Budgets: spend caps per tenant, user and API key, held exactly with reservations.

Config (`budgets`), every LIMITS any subset of usd_per_day, usd_per_month,
tokens_per_day over UTC calendar days and months::

    budgets:
      tenants: {acme: {usd_per_day: 50, usd_per_month: 1000}}
      users:   {alice: {usd_per_day: 5}}        # that user name inside any tenant
      keys:    {ci-key: {tokens_per_day: 2000000}}
      default: {usd_per_day: 10}                # each tenant not listed
      pacing:  {start: 0.8}
      reservation_ttl_s: 600                    # a hold nobody settles is dropped after this

Before each upstream call the caller's `reserve` holds the call's worst-case
cost (prompt tokens plus max output tokens at the model's price) on every cap
that applies; `settle` swaps it for the real cost. A hold that does not fit is
`BudgetExceeded` (RESOURCE_EXHAUSTED) saying what is left and when it resets.
The state lives in the ledger (state/ledger.py): per process, or one global
budget in Redis. With Redis down, budgeted calls fail closed (UNAVAILABLE)
unless `state.fail_open: true`.

`view` is what the router reads on every Route, synchronously: from memory
directly, or (Redis) from a per-identity snapshot that every reserve and settle
refreshes and that a background read renews when older than `SNAPSHOT_S`.
"""

from __future__ import annotations

import asyncio
import calendar
import itertools
import math
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import structlog

from routecore.config import _Reader
from routecore.domain import BudgetState
from routecore.errors import ConfigError, InvalidRequest, ResourceExhausted, StateUnavailable
from routecore.state.backend import Backend
from routecore.state.ledger import Counter, MemoryLedger, RedisLedger, open_ledger

log = structlog.get_logger("routecore.state.budget")

LIMIT_FIELDS = ("usd_per_day", "usd_per_month", "tokens_per_day")
NANO = 1_000_000_000  # the ledger counts USD in nano-dollars: integers add exactly
SNAPSHOT_S = 0.5  # Route's view of a Redis budget is at most this old (plus one read)
MAX_NAME = 256  # tenant, user and key ids longer than this are refused when budgets apply
_MAX_VIEWS = 10_000  # identities whose snapshot is kept (oldest dropped first)


@dataclass(frozen=True, slots=True)
class Limits:
    usd_per_day: float | None = None
    usd_per_month: float | None = None
    tokens_per_day: int | None = None


@dataclass(frozen=True, slots=True)
class BudgetsConfig:
    tenants: Mapping[str, Limits]
    users: Mapping[str, Limits]
    keys: Mapping[str, Limits]
    default: Limits | None
    pacing_start: float = 0.8
    reservation_ttl_s: float = 600.0

    @property
    def enabled(self) -> bool:
        return bool(self.tenants or self.users or self.keys or self.default)


NO_BUDGETS = BudgetsConfig({}, {}, {}, None)


def _limits(r: _Reader, node: Any, path: str) -> Limits | None:
    n = r.mapping(node, path)
    r.unknown(n, path, set(LIMIT_FIELDS))
    if not n:
        r.fail(path, f"must set at least one of {', '.join(LIMIT_FIELDS)}")
        return None
    return Limits(usd_per_day=r.number(n, "usd_per_day", path, lo=0.0, default=None),
                  usd_per_month=r.number(n, "usd_per_month", path, lo=0.0, default=None),
                  tokens_per_day=r.number(n, "tokens_per_day", path, lo=0, integer=True,
                                          default=None))


def parse_budgets(raw: Any, problems: list[str] | None = None) -> BudgetsConfig:
    """Validate the `budgets` section; with `problems` they are appended, else raised."""
    r, p = _Reader(), "budgets"
    n = r.mapping(raw, p, required=False)
    r.unknown(n, p, {"tenants", "users", "keys", "default", "pacing", "reservation_ttl_s"})
    groups: dict[str, dict[str, Limits]] = {}
    for group in ("tenants", "users", "keys"):
        g = r.mapping(n.get(group), f"{p}.{group}", required=False)
        out: dict[str, Limits] = {}
        for name, node in g.items():
            lim = _limits(r, node, f"{p}.{group}.{name}")
            if lim is not None:
                out[str(name)] = lim
        groups[group] = out
    default = _limits(r, n["default"], f"{p}.default") if n.get("default") is not None else None
    pacing = r.mapping(n.get("pacing"), f"{p}.pacing", required=False)
    r.unknown(pacing, f"{p}.pacing", {"start"})
    start = r.number(pacing, "start", f"{p}.pacing", lo=0.0, hi=1.0, default=0.8)
    ttl = r.number(n, "reservation_ttl_s", p, lo=1.0, hi=86_400.0, default=600.0)
    if problems is not None:
        problems.extend(r.problems)
    elif r.problems:
        raise ConfigError(r.problems)
    return BudgetsConfig(tenants=groups["tenants"], users=groups["users"], keys=groups["keys"],
                         default=default, pacing_start=0.8 if start is None else start,
                         reservation_ttl_s=600.0 if ttl is None else ttl)


def check_keys(config: BudgetsConfig, key_ids: Collection[str] | None) -> None:
    """`budgets.keys` must name API keys that exist (`key_ids`: the auth.keys ids, None with
    auth off), or the cap would silently never apply. Raises ConfigError naming each."""
    if not config.keys:
        return
    if key_ids is None:
        raise ConfigError([f"budgets.keys.{k}: needs auth.keys (a key id exists only with "
                           f"API keys on)" for k in config.keys])
    unknown = [f"budgets.keys.{k}: no API key with this id in auth.keys"
               for k in config.keys if k not in key_ids]
    if unknown:
        raise ConfigError(unknown)


class BudgetExceeded(ResourceExhausted):
    """A call's reservation does not fit a budget cap."""


@dataclass(frozen=True, slots=True)
class _Cap:
    scope: str  # tenant | user | key
    name: str
    field: str  # usd_per_day | usd_per_month | tokens_per_day
    period: str  # 2026-11-30 | 2026-11
    resets_at: int  # epoch seconds: the start of the next period
    counter: Counter

    @property
    def usd(self) -> bool:
        return self.field.startswith("usd")

    def label(self) -> str:
        return f"{self.scope} {self.name[:64]!r} {self.field}"

    def value(self, amount: int) -> float:
        return amount / NANO if self.usd else float(amount)

    def fmt(self, amount: int) -> str:
        return f"${amount / NANO:.6f}" if self.usd else f"{amount} tokens"


@dataclass(frozen=True, slots=True)
class WindowStatus:
    """One cap's state, for GetBudget."""

    scope: str
    name: str
    limit_name: str
    period: str
    spent: float
    reserved: float
    limit: float
    remaining: float
    resets_at: int


@dataclass(slots=True)
class Hold:
    """A reservation taken by `reserve`; settle it exactly once."""

    tenant: str
    rid: str
    caps: tuple[_Cap, ...]
    ident: tuple[str, str, str]


def _periods(now: float) -> tuple[str, int, str, int]:
    """(day id, next day start, month id, next month start), UTC."""
    t = datetime.fromtimestamp(now, UTC)
    day_start = calendar.timegm((t.year, t.month, t.day, 0, 0, 0))
    y, m = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return (f"{t:%Y-%m-%d}", day_start + 86_400, f"{t:%Y-%m}",
            calendar.timegm((y, m, 1, 0, 0, 0)))


class Budgets:
    """Reserve, settle, view and report budgets on one state backend."""

    def __init__(self, config: BudgetsConfig, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self.clock = backend.clock
        self.ledger: MemoryLedger | RedisLedger = open_ledger(backend)
        self.enabled = config.enabled
        # Metric-ready counters (plain ints): holds taken, refused, settled, failures.
        self.reserved = self.refused = self.settled = self.failures = 0
        self._rid = itertools.count(1)
        self._rid_prefix = secrets.token_hex(8) + "-"
        self._caps: dict[tuple[str, str, str], tuple[_Cap, ...]] = {}
        self._caps_until = 0.0  # cached caps are for the periods before this instant
        self._views: dict[tuple[str, str, str], tuple[float, tuple[int, ...]]] = {}
        self._states: dict[tuple[str, str, str], tuple[tuple[int, ...], BudgetState]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refreshing: set[tuple[str, str, str]] = set()

    # -- which caps apply ---------------------------------------------------------

    def caps(self, tenant: str, user: str = "", key_id: str = "") -> tuple[_Cap, ...]:
        """The caps on one caller in the current periods (cached until the day ends)."""
        now = self.clock()
        if now >= self._caps_until:
            self._caps.clear()
            self._views.clear()
            self._states.clear()
        ident = (tenant, user, key_id)
        caps = self._caps.get(ident)
        if caps is not None:
            return caps
        for what, value in (("tenant", tenant), ("user", user), ("key_id", key_id)):
            if len(value) > MAX_NAME:
                raise InvalidRequest(f"{what}: at most {MAX_NAME} characters, got {len(value)}")
        cfg = self.config
        day, day_end, month, month_end = _periods(now)
        self._caps_until = day_end
        keep = int(cfg.reservation_ttl_s) + 3600  # a late settle still finds its window
        scopes = [("tenant", "t", tenant, cfg.tenants.get(tenant, cfg.default)),
                  ("user", "u", user, cfg.users.get(user) if user else None),
                  ("key", "k", key_id, cfg.keys.get(key_id) if key_id else None)]
        out: list[_Cap] = []
        for scope, short, name, lim in scopes:
            if lim is None:
                continue
            prefix = short if scope == "tenant" else f"{short}:{quote(name, safe='')}"
            for field in LIMIT_FIELDS:
                limit = getattr(lim, field)
                if limit is None:
                    continue
                monthly = field.endswith("month")
                period, resets = (month, month_end) if monthly else (day, day_end)
                units = round(limit * NANO) if field.startswith("usd") else int(limit)
                metric = "tok" if field.startswith("tokens") else "usd"
                counter = Counter(f"{prefix}:{metric}:{'month' if monthly else 'day'}:{period}",
                                  units, resets + keep)
                out.append(_Cap(scope, name, field, period, resets, counter))
        caps = tuple(out)
        if len(self._caps) >= _MAX_VIEWS:
            self._caps.pop(next(iter(self._caps)))
        self._caps[ident] = caps
        return caps

    # -- reserve and settle ---------------------------------------------------------

    async def reserve(self, tenant: str, user: str, key_id: str, usd: float, tokens: int,
                      hold_s: float | None = None) -> Hold | None:
        """Hold `usd` and `tokens` on every cap of the caller for `hold_s` (default
        `reservation_ttl_s`); None when no cap applies (or Redis is down and
        `state.fail_open`). Raises BudgetExceeded or StateUnavailable."""
        caps = self.caps(tenant, user, key_id)
        if not caps:
            return None
        amounts = [self._units(c, usd, tokens, ceil=True) for c in caps]
        rid = f"{self._rid_prefix}{next(self._rid):x}"
        counters = [c.counter for c in caps]
        until = self.clock() + (self.config.reservation_ttl_s if hold_s is None else hold_s)
        try:
            if isinstance(self.ledger, MemoryLedger):  # no await inside: cannot be cut short
                refused, used = await self.ledger.reserve(tenant, rid, counters, amounts, until)
            else:
                refused, used = await self._reserve_shielded(
                    (tenant, user, key_id), rid, caps, amounts, until)
        except StateUnavailable as exc:
            self.failures += 1
            if self.backend.config.fail_open:
                return None
            raise StateUnavailable(
                f"budgets fail closed: {exc.message} (state.fail_open: true serves without "
                f"budgets while the backend is down)") from exc
        self._remember((tenant, user, key_id), used)
        if refused >= 0:
            self.refused += 1
            raise BudgetExceeded(self._refusal(caps[refused], used[refused], amounts[refused]))
        self.reserved += 1
        return Hold(tenant, rid, caps, (tenant, user, key_id))

    async def _reserve_shielded(self, ident: tuple[str, str, str], rid: str,
                                caps: tuple[_Cap, ...], amounts: list[int],
                                until: float) -> tuple[int, list[int]]:
        """The Redis reserve, finished even if the caller is cancelled meanwhile (client gone):
        a hold the script took is then given back at once instead of waiting to expire."""
        counters = [c.counter for c in caps]
        task = asyncio.ensure_future(self.ledger.reserve(ident[0], rid, counters, amounts, until))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            hold = Hold(ident[0], rid, caps, ident)

            def give_back(t: asyncio.Task[tuple[int, list[int]]]) -> None:
                if t.cancelled() or t.exception() is not None or t.result()[0] != -1:
                    return
                undo = asyncio.ensure_future(self._settle(hold, [0] * len(counters)))
                self._tasks.add(undo)
                undo.add_done_callback(self._tasks.discard)

            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(give_back)
            raise

    async def settle(self, hold: Hold, usd: float, tokens: int) -> None:
        """Replace the hold by the real cost. Never raises: with the backend down the cost
        is lost (logged, counted) and the hold expires by itself."""
        amounts = [self._units(c, usd, tokens, ceil=False) for c in hold.caps]
        # Shielded: a caller cancelled right now (client gone) still gets its spend recorded.
        task = asyncio.ensure_future(self._settle(hold, amounts))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.shield(task)

    async def _settle(self, hold: Hold, amounts: list[int]) -> None:
        try:
            used = await self.ledger.settle(hold.tenant, hold.rid,
                                            [c.counter for c in hold.caps], amounts)
        except StateUnavailable:
            self.failures += 1
            log.warning("budget_settle_lost", amounts=amounts, tenant=hold.tenant[:64])
            return
        self.settled += 1
        self._remember(hold.ident, used)

    @staticmethod
    def _units(cap: _Cap, usd: float, tokens: int, *, ceil: bool) -> int:
        if not cap.usd:
            return max(0, int(tokens))
        x = max(0.0, usd) * NANO
        return math.ceil(x) if ceil else round(x)

    def _refusal(self, cap: _Cap, used: int, amount: int) -> str:
        limit = cap.counter.limit
        resets = datetime.fromtimestamp(cap.resets_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (f"budget exhausted: {cap.label()} has {cap.fmt(max(0, limit - used))} left of "
                f"{cap.fmt(limit)} (this call may cost up to {cap.fmt(amount)}); "
                f"resets at {resets}")

    # -- what routing sees ------------------------------------------------------------

    def view(self, tenant: str, user: str = "", key_id: str = "") -> BudgetState | None:
        """The caller's budget state for pacing, without waiting on I/O (None: no cap)."""
        caps = self.caps(tenant, user, key_id)
        if not caps:
            return None
        ident = (tenant, user, key_id)
        if isinstance(self.ledger, MemoryLedger):
            used: tuple[int, ...] = tuple(
                s + r for s, r in self.ledger.peek(tenant, [c.counter for c in caps]))
        else:
            snap = self._views.get(ident)
            if snap is None or self.clock() - snap[0] > SNAPSHOT_S:
                self._refresh(ident, caps)
            if snap is None or len(snap[1]) != len(caps):
                return None  # first sight of this caller: no pacing until the read is back
            used = snap[1]
        cached = self._states.get(ident)
        if cached is not None and cached[0] == used:
            return cached[1]  # unchanged since the last Route: no arithmetic, no allocation
        state = self._state(caps, used)
        if ident not in self._states and len(self._states) >= _MAX_VIEWS:
            self._states.pop(next(iter(self._states)))
        self._states[ident] = (used, state)
        return state

    def _state(self, caps: tuple[_Cap, ...], used: tuple[int, ...]) -> BudgetState:
        share, nearest, remaining = -1.0, caps[0], None
        for cap, u in zip(caps, used, strict=True):
            limit = cap.counter.limit
            s = u / limit if limit > 0 else (1.0 if u > 0 or limit == 0 else 0.0)
            if s > share:
                share, nearest = s, cap
            if cap.usd:
                left = max(0, limit - u) / NANO
                remaining = left if remaining is None else min(remaining, left)
        start = self.config.pacing_start
        pacing = (1.0 if share >= 1.0 else 0.0) if start >= 1.0 else \
            min(1.0, max(0.0, (share - start) / (1.0 - start)))
        return BudgetState(share_used=share, remaining_usd=remaining, cap=nearest.label(),
                           pacing=pacing)

    def _remember(self, ident: tuple[str, str, str], used: list[int]) -> None:
        if isinstance(self.ledger, MemoryLedger):
            return
        if ident not in self._views and len(self._views) >= _MAX_VIEWS:
            self._views.pop(next(iter(self._views)))
        self._views[ident] = (self.clock(), tuple(used))

    def _refresh(self, ident: tuple[str, str, str], caps: tuple[_Cap, ...]) -> None:
        """Renew one snapshot in the background (one read in flight per identity)."""
        if ident in self._refreshing:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside the server (CLI): nothing to refresh with
            return
        self._refreshing.add(ident)

        async def read() -> None:
            try:
                rows = await self.ledger.read(ident[0], [c.counter for c in caps])
                self._remember(ident, [s + r for s, r in rows])
            except StateUnavailable:
                self.failures += 1  # logged by the backend; the old snapshot stays
            finally:
                self._refreshing.discard(ident)

        task = loop.create_task(read())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- GetBudget ------------------------------------------------------------------------

    async def status(self, tenant: str, user: str = "", key_id: str = "") -> list[WindowStatus]:
        """Spent, reserved, limit, remaining and reset time of every cap on the caller."""
        caps = self.caps(tenant, user, key_id)
        if not caps:
            return []
        rows = await self.ledger.read(tenant, [c.counter for c in caps])
        self._remember((tenant, user, key_id), [s + r for s, r in rows])
        return [WindowStatus(c.scope, c.name, c.field, c.period, c.value(s), c.value(r),
                             c.value(c.counter.limit), c.value(max(0, c.counter.limit - s - r)),
                             c.resets_at)
                for c, (s, r) in zip(caps, rows, strict=True)]

    async def aclose(self) -> None:
        """Wait for the settles and snapshot reads in flight (each bounded by the backend's
        timeout)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
