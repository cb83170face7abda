"""Circuit breakers per deployment, shared by every replica on the Redis backend.

closed -> (failures in the window) -> open -> (cooldown) -> half-open -> one probe.
Inside the sliding `window_s`, `failure_threshold` failures, or a failure share
of at least `failure_rate` over at least `min_calls` calls, open it. Successes
do not erase failures: they only lower the rate. After `cooldown_s` it is
half-open and lets exactly one probe through; the probe's success closes it (a
fresh window), its failure opens it again. Outcomes that arrive while it is
open (calls started before it opened) are ignored. `enabled: false` turns it
off entirely: it never opens.

`MemoryBreakers` keeps them in this process. `RedisBreakers` keeps each in three
keys (`rc:{%}:breaker:<deployment>:s|c|f`: state, calls and failures in the
window) changed by one Lua script per operation, so one replica's evidence
protects all: a breaker opened by one replica's failures refuses the others'
calls too (within `FRESH_S`: a breaker a replica saw closed that recently is not
asked again). A half-open probe is a lease (`PROBE_LEASE_S`), so a replica that
dies mid-probe cannot keep the breaker shut. `state()` is synchronous for the
router's health view: from memory, or (Redis) as this replica last saw it.
With Redis unreachable (logged once per outage by the backend) breakers let
calls through: they protect the upstream, they are not worth an outage.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from routecore.errors import StateUnavailable
from routecore.state.backend import Backend, RedisBackend

Clock = Callable[[], float]
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
PROBE_LEASE_S = 60.0  # a probe nobody reports on stops blocking others after this
# Redis: a breaker this replica saw closed this recently lets a call through without
# asking (saves a round trip per call); another replica's opening is seen after this.
FRESH_S = 0.25


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    enabled: bool = True
    failure_threshold: int = 5  # failures inside the window that open it
    window_s: float = 30.0
    cooldown_s: float = 15.0
    failure_rate: float = 0.5  # or this share of failed calls inside the window...
    min_calls: int = 10  # ...once the window holds at least this many calls


class Breakers(Protocol):
    async def allow(self, key: str) -> bool:
        """May a call to deployment `key` go through now? Half-open: one probe at a time."""
        ...

    async def record(self, key: str, failed: bool) -> None:
        """One call's outcome."""
        ...

    async def release(self, key: str) -> None:
        """The call ended without a verdict (cancelled): let another probe through."""
        ...

    def state(self, key: str) -> str:
        """closed, open or half_open, without waiting (as last seen, on Redis)."""
        ...


class CircuitBreaker:
    """One deployment's breaker in this process."""

    CLOSED, OPEN, HALF_OPEN = CLOSED, OPEN, HALF_OPEN

    def __init__(self, config: BreakerConfig, clock: Clock = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._calls: deque[tuple[float, bool]] = deque()  # (when, failed) inside the window
        self._failures = 0
        self._opened_at = 0.0
        self._state = CLOSED
        self._probe_out = False

    @property
    def state(self) -> str:
        if not self.config.enabled:
            return CLOSED
        if self._state == OPEN and self._clock() - self._opened_at >= self.config.cooldown_s:
            self._state = HALF_OPEN
            self._probe_out = False
        return self._state

    def allow(self) -> bool:
        if not self.config.enabled:
            return True
        state = self.state
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self._probe_out:
            self._probe_out = True
            return True
        return False

    def record_success(self) -> None:
        self._record(failed=False)

    def record_failure(self) -> None:
        self._record(failed=True)

    def _record(self, failed: bool) -> None:
        if not self.config.enabled:
            return
        state = self.state
        now = self._clock()
        if state == HALF_OPEN:  # the probe's verdict
            if failed:
                self._open(now)
            else:
                self._reset(CLOSED)
            return
        if state == OPEN:
            return  # a call started before it opened: the breaker has decided already
        c = self.config
        self._calls.append((now, failed))
        self._failures += failed
        while self._calls and now - self._calls[0][0] > c.window_s:
            self._failures -= self._calls.popleft()[1]
        n = len(self._calls)
        if self._failures >= c.failure_threshold or (
                n >= c.min_calls and self._failures >= c.failure_rate * n):
            self._open(now)

    def release(self) -> None:
        self._probe_out = False

    def _open(self, now: float) -> None:
        self._reset(OPEN)
        self._opened_at = now

    def _reset(self, state: str) -> None:
        self._state = state
        self._probe_out = False
        self._calls.clear()
        self._failures = 0


class MemoryBreakers:
    """`Breakers` in this process: each replica learns on its own."""

    def __init__(self, config: BreakerConfig, clock: Clock = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, key: str) -> CircuitBreaker:
        b = self._breakers.get(key)
        if b is None:
            b = self._breakers[key] = CircuitBreaker(self.config, self._clock)
        return b

    async def allow(self, key: str) -> bool:
        return self.get(key).allow()

    async def record(self, key: str, failed: bool) -> None:
        self.get(key)._record(failed)

    async def release(self, key: str) -> None:
        self.get(key).release()

    def state(self, key: str) -> str:
        b = self._breakers.get(key)
        return CLOSED if b is None else b.state


# KEYS: state hash (st, oa: opened at, pu: probe lease until), calls zset, failures zset.
# ARGV: now, op ('allow' | 'ok' | 'fail' | 'release'), member id, threshold, window,
# rate, min_calls, cooldown, lease, ttl. Returns {allowed '1'/'0', state, opened_at}.
_LUA = """
local now = tonumber(ARGV[1])
local op = ARGV[2]
local cooldown, lease = tonumber(ARGV[8]), tonumber(ARGV[9])
local v = redis.call('HMGET', KEYS[1], 'st', 'oa', 'pu')
local st, oa, pu = v[1] or 'closed', tonumber(v[2]) or 0, tonumber(v[3]) or 0
local function reset(to)
  st, pu = to, 0
  redis.call('DEL', KEYS[2], KEYS[3])
end
if st == 'open' and now - oa >= cooldown then st, pu = 'half_open', 0 end
local allowed = '0'
if op == 'allow' then
  if st == 'closed' then
    allowed = '1'
  elseif st == 'half_open' and pu <= now then
    allowed, pu = '1', now + lease
  end
elseif op == 'release' then
  if st == 'half_open' then pu = 0 end
elseif st == 'half_open' then
  if op == 'fail' then reset('open'); oa = now else reset('closed') end
elseif st == 'closed' then
  local window = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[2], now, ARGV[3])
  if op == 'fail' then redis.call('ZADD', KEYS[3], now, ARGV[3]) end
  for k = 2, 3 do redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', '(' .. (now - window)) end
  local n, f = redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3])
  if f >= tonumber(ARGV[4]) or (n >= tonumber(ARGV[7]) and f >= tonumber(ARGV[6]) * n) then
    reset('open')
    oa = now
  end
end
redis.call('HSET', KEYS[1], 'st', st, 'oa', tostring(oa), 'pu', tostring(pu))
for k = 1, 3 do redis.call('EXPIRE', KEYS[k], ARGV[10]) end
return {allowed, st, tostring(oa)}
"""


class RedisBreakers:
    """`Breakers` in Redis: one state per deployment for the whole fleet."""

    def __init__(self, backend: RedisBackend, config: BreakerConfig) -> None:
        self.backend = backend
        self.config = config
        self._seen: dict[str, tuple[str, float, float]] = {}  # key -> (state, opened_at, when)
        self._ids = secrets.token_hex(6)
        self._n = 0
        c = config
        self._ttl = int(max(c.window_s, c.cooldown_s) + PROBE_LEASE_S + 60)

    async def _op(self, key: str, op: str) -> bool:
        c, b = self.config, self.backend
        self._n += 1
        keys = [b.key("", "breaker", key, s) for s in ("s", "c", "f")]
        try:
            out = await b.run("breaker", _LUA, keys, [
                repr(b.clock()), op, f"{self._ids}-{self._n}", c.failure_threshold, c.window_s,
                c.failure_rate, c.min_calls, c.cooldown_s, PROBE_LEASE_S, self._ttl])
        except StateUnavailable:  # logged and counted by the backend; calls go on unguarded
            return True
        allowed, state, opened = (x.decode() if isinstance(x, bytes) else str(x) for x in out)
        self._seen[key] = (state, float(opened), b.clock())
        return allowed == "1"

    async def allow(self, key: str) -> bool:
        if not self.config.enabled:
            return True
        seen = self._seen.get(key)
        if seen is not None and seen[0] == CLOSED and self.backend.clock() - seen[2] < FRESH_S:
            return True
        return await self._op(key, "allow")

    async def record(self, key: str, failed: bool) -> None:
        if self.config.enabled:
            await self._op(key, "fail" if failed else "ok")

    async def release(self, key: str) -> None:
        if self.config.enabled:
            await self._op(key, "release")

    def state(self, key: str) -> str:
        seen = self._seen.get(key)
        if seen is None or not self.config.enabled:
            return CLOSED
        state, opened, _ = seen
        if state == OPEN and self.backend.clock() - opened >= self.config.cooldown_s:
            return HALF_OPEN
        return state


def open_breakers(backend: Backend, config: BreakerConfig) -> MemoryBreakers | RedisBreakers:
    """The breakers on the configured backend."""
    if isinstance(backend, RedisBackend):
        return RedisBreakers(backend, config)
    return MemoryBreakers(config, backend.clock)
