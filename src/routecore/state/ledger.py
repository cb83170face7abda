"""Ledger: capped counters with expiring holds, exact across replicas (the budgets' state).

A counter is one (scope, metric, window) of one tenant, e.g. the tenant's USD
for 2026-11-30. Amounts are integers (budgets count nano-dollars and tokens),
so Redis adds them exactly. Each counter has `spent` (settled) and `reserved`
(held by calls in flight); a hold covers several counters at once and is
all-or-nothing: it is taken only if every capped counter still fits
`spent + reserved + amount <= limit`. A hold expires at `hold_until`, so a
process that dies between reserve and settle cannot keep its reservation
forever: every operation on the tenant first releases its expired holds.

Two implementations of one protocol: `MemoryLedger` (one process) and
`RedisLedger` (a Lua script per operation, keys `rc:{tenant}:budget:...`,
every counter expiring with its window plus a margin).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from routecore.state.backend import Backend, MemoryBackend, RedisBackend


@dataclass(frozen=True, slots=True)
class Counter:
    name: str  # inside the tenant's key space, e.g. "t:usd:day:2026-11-30"
    limit: int  # < 0: tracked, never refuses (0 refuses any positive amount)
    expires_at: int  # epoch seconds after which the counter (its window) is forgotten


class Ledger(Protocol):
    async def reserve(self, tenant: str, rid: str, counters: Sequence[Counter],
                      amounts: Sequence[int], hold_until: float) -> tuple[int, list[int]]:
        """Hold `amounts` on every counter if all fit. Returns (-1, used after) when held,
        else (index of the first counter that does not fit, used now); used = spent + reserved."""
        ...

    async def settle(self, tenant: str, rid: str, counters: Sequence[Counter],
                     amounts: Sequence[int]) -> list[int]:
        """Release hold `rid` (if it has not expired) and add `amounts` to spent; used after."""
        ...

    async def read(self, tenant: str, counters: Sequence[Counter]) -> list[tuple[int, int]]:
        """(spent, reserved) per counter, expired holds released first."""
        ...


class MemoryLedger:
    """The ledger in this process. No await inside an operation, so each is atomic."""

    def __init__(self, backend: MemoryBackend) -> None:
        self.clock = backend.clock
        self._counters: dict[tuple[str, str], list[int]] = {}  # -> [spent, reserved, expires_at]
        # tenant -> hold id -> (until, ((counter name, amount), ...))
        self._holds: dict[str, dict[str, tuple[float, tuple[tuple[str, int], ...]]]] = {}
        self._ops = 0

    def _cell(self, tenant: str, c: Counter) -> list[int]:
        cell = self._counters.get((tenant, c.name))
        if cell is None:
            cell = self._counters[(tenant, c.name)] = [0, 0, c.expires_at]
        return cell

    def _release(self, tenant: str, rid: str) -> None:
        holds = self._holds.get(tenant)
        hold = holds.pop(rid, None) if holds is not None else None
        if holds is not None and not holds:
            del self._holds[tenant]  # no empty entry left behind per tenant ever seen
        if hold is not None:
            for name, amount in hold[1]:
                cell = self._counters.get((tenant, name))
                if cell is not None:
                    cell[1] -= amount

    def _sweep(self, tenant: str) -> None:
        now = self.clock()
        holds = self._holds.get(tenant)
        if holds:
            for rid in [r for r, (until, _) in holds.items() if until <= now]:
                self._release(tenant, rid)
        self._ops += 1
        if self._ops % 4096 == 0:  # forget windows that are over (what Redis TTLs do)
            for k in [k for k, cell in self._counters.items() if cell[2] <= now]:
                del self._counters[k]

    def peek(self, tenant: str, counters: Sequence[Counter]) -> list[tuple[int, int]]:
        """`read`, synchronously (the router's pacing reads it on the hot path)."""
        self._sweep(tenant)
        out = []
        for c in counters:
            cell = self._counters.get((tenant, c.name))
            out.append((0, 0) if cell is None else (cell[0], cell[1]))
        return out

    async def reserve(self, tenant: str, rid: str, counters: Sequence[Counter],
                      amounts: Sequence[int], hold_until: float) -> tuple[int, list[int]]:
        self._sweep(tenant)
        cells = [self._cell(tenant, c) for c in counters]
        used = [cell[0] + cell[1] for cell in cells]
        for i, c in enumerate(counters):
            if c.limit >= 0 and used[i] + amounts[i] > c.limit:
                return i, used
        for cell, amount in zip(cells, amounts, strict=True):
            cell[1] += amount
        self._holds.setdefault(tenant, {})[rid] = (
            hold_until, tuple((c.name, a) for c, a in zip(counters, amounts, strict=True)))
        return -1, [u + a for u, a in zip(used, amounts, strict=True)]

    async def settle(self, tenant: str, rid: str, counters: Sequence[Counter],
                     amounts: Sequence[int]) -> list[int]:
        self._release(tenant, rid)
        self._sweep(tenant)
        out = []
        for c, amount in zip(counters, amounts, strict=True):
            cell = self._cell(tenant, c)
            cell[0] += amount
            out.append(cell[0] + cell[1])
        return out

    async def read(self, tenant: str, counters: Sequence[Counter]) -> list[tuple[int, int]]:
        return self.peek(tenant, counters)


# KEYS[1] holds (zset: id -> until), KEYS[2] hold amounts (hash: id -> json [key, amount, ...]),
# KEYS[3..] counters (hash: s = spent, r = reserved). ARGV[1] is now (epoch seconds).
_LUA_COMMON = """
local function release(id)
  local data = redis.call('HGET', KEYS[2], id)
  if data then
    local parts = cjson.decode(data)
    for j = 1, #parts, 2 do
      if redis.call('EXISTS', parts[j]) == 1 then
        redis.call('HINCRBY', parts[j], 'r', '-' .. parts[j + 1])
      end
    end
    redis.call('HDEL', KEYS[2], id)
  end
  redis.call('ZREM', KEYS[1], id)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  release(id)
end
"""

# ARGV: now, id, until, then per counter (limit, amount, expire_at).
_LUA_RESERVE = _LUA_COMMON + """
local n = #KEYS - 2
local used = {}
local refused = 0
for i = 1, n do
  local v = redis.call('HMGET', KEYS[i + 2], 's', 'r')
  used[i] = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
  local limit = tonumber(ARGV[3 * i + 1])
  if refused == 0 and limit >= 0 and used[i] + tonumber(ARGV[3 * i + 2]) > limit then
    refused = i
  end
end
if refused > 0 then
  table.insert(used, 1, refused)
  return used
end
local parts = {}
for i = 1, n do
  local amount = ARGV[3 * i + 2]
  if amount ~= '0' then
    redis.call('HINCRBY', KEYS[i + 2], 'r', amount)
    table.insert(parts, KEYS[i + 2])
    table.insert(parts, amount)
  end
  redis.call('EXPIREAT', KEYS[i + 2], ARGV[3 * i + 3])
  used[i] = used[i] + tonumber(amount)
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], cjson.encode(parts))
local keep = math.ceil(tonumber(ARGV[3])) + 3600
for k = 1, 2 do
  local ttl = redis.call('TTL', KEYS[k])
  if ttl < 0 or tonumber(ARGV[1]) + ttl < keep then
    redis.call('EXPIREAT', KEYS[k], keep)
  end
end
table.insert(used, 1, 0)
return used
"""

# ARGV: now, id, then per counter (amount, expire_at).
_LUA_SETTLE = _LUA_COMMON + """
release(ARGV[2])
local used = {}
for i = 1, #KEYS - 2 do
  local amount = ARGV[2 * i + 1]
  if amount ~= '0' then
    redis.call('HINCRBY', KEYS[i + 2], 's', amount)
  end
  redis.call('EXPIREAT', KEYS[i + 2], ARGV[2 * i + 2])
  local v = redis.call('HMGET', KEYS[i + 2], 's', 'r')
  used[i] = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
end
return used
"""

# ARGV: now. Returns spent, reserved per counter.
_LUA_READ = _LUA_COMMON + """
local out = {}
for i = 3, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 's', 'r')
  table.insert(out, tonumber(v[1]) or 0)
  table.insert(out, tonumber(v[2]) or 0)
end
return out
"""


class RedisLedger:
    """The ledger in Redis: one atomic Lua script per operation, one round trip each."""

    def __init__(self, backend: RedisBackend, prefix: str = "budget") -> None:
        self.backend = backend
        self.prefix = prefix

    def _keys(self, tenant: str, counters: Sequence[Counter]) -> list[str]:
        b, p = self.backend, self.prefix
        return [b.key(tenant, p, "holds"), b.key(tenant, p, "holdamts"),
                *(b.key(tenant, p, c.name) for c in counters)]

    async def reserve(self, tenant: str, rid: str, counters: Sequence[Counter],
                      amounts: Sequence[int], hold_until: float) -> tuple[int, list[int]]:
        args: list[object] = [self.backend.clock(), rid, hold_until]
        for c, a in zip(counters, amounts, strict=True):
            args += [c.limit, int(a), c.expires_at]
        out = await self.backend.run("ledger_reserve", _LUA_RESERVE,
                                     self._keys(tenant, counters), args)
        return int(out[0]) - 1, [int(x) for x in out[1:]]

    async def settle(self, tenant: str, rid: str, counters: Sequence[Counter],
                     amounts: Sequence[int]) -> list[int]:
        args: list[object] = [self.backend.clock(), rid]
        for c, a in zip(counters, amounts, strict=True):
            args += [int(a), c.expires_at]
        out = await self.backend.run("ledger_settle", _LUA_SETTLE,
                                     self._keys(tenant, counters), args)
        return [int(x) for x in out]

    async def read(self, tenant: str, counters: Sequence[Counter]) -> list[tuple[int, int]]:
        out = await self.backend.run("ledger_read", _LUA_READ, self._keys(tenant, counters),
                                     [self.backend.clock()])
        vals = [int(x) for x in out]
        return list(zip(vals[0::2], vals[1::2], strict=True))


def open_ledger(backend: Backend) -> MemoryLedger | RedisLedger:
    """The ledger on the configured backend."""
    if isinstance(backend, RedisBackend):
        return RedisLedger(backend)
    return MemoryLedger(backend)
