"""Rate limits: client-side RPM and TPM token buckets per model, one global pair per fleet.

A bucket holds up to `per_minute` tokens and refills continuously over 60 s;
a limit of 0 is unlimited. `acquire` takes one request and the call's tokens
from the model's two buckets when both have them, else takes nothing and says
how long until they would; `correct` adjusts them once the real usage is known
(a refund is negative), so a bucket may run into debt that the refill repays.

`MemoryRateLimits` keeps the buckets in this process; `RedisRateLimits` keeps
one hash per model (`rc:{%}:limits:<model>`, gone 120 s after its last use,
when it would be full again anyway) and does each operation in one Lua script,
so every replica draws from the same buckets: one global limit per model.
With Redis unreachable (logged once per outage by the backend) calls are let
through: the upstream's own 429s still slow us down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from routecore.errors import StateUnavailable
from routecore.state.backend import Backend, RedisBackend

Clock = Callable[[], float]


class RateLimits(Protocol):
    async def acquire(self, model: str, rpm: int, tpm: int, tokens: int) -> float:
        """Take 1 request and `tokens` tokens and return 0, or return the seconds until
        they would fit, taking nothing."""
        ...

    async def correct(self, model: str, rpm: int, tpm: int, delta_tokens: int,
                      delta_requests: int = 0) -> None:
        """Take (positive) or give back (negative) tokens and requests after the fact."""
        ...


class TokenBucket:
    """`capacity` tokens refilled continuously over 60 s; 0 capacity is unlimited."""

    def __init__(self, per_minute: int, clock: Clock = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.tokens = float(per_minute)
        self._clock = clock
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self._last) * self.rate)
        self._last = now

    def wait_for(self, n: float) -> float:
        """Seconds until `n` tokens are available (0: available now). Takes nothing."""
        if self.capacity <= 0:
            return 0.0
        self._refill()
        n = min(n, self.capacity)
        return 0.0 if self.tokens >= n else (n - self.tokens) / self.rate

    def level(self) -> float:
        """Tokens in the bucket now (may be negative: a debt), without taking any."""
        now = self._clock()
        return min(self.capacity, self.tokens + max(0.0, now - self._last) * self.rate)

    def take(self, n: float) -> None:
        if self.capacity > 0:
            self._refill()
            self.tokens -= n  # may go below zero: a debt repaid by the refill


class RateLimiter:
    """RPM and TPM buckets, one pair per model, in this process (synchronous core)."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[TokenBucket, TokenBucket]] = {}

    def _pair(self, model: str, rpm: int, tpm: int) -> tuple[TokenBucket, TokenBucket]:
        pair = self._buckets.get(model)
        if pair is None:
            pair = (TokenBucket(rpm, self._clock), TokenBucket(tpm, self._clock))
            self._buckets[model] = pair
        return pair

    def try_acquire(self, model: str, rpm: int, tpm: int, tokens: int) -> float:
        """Take one request and `tokens` tokens and return 0, or return the wait without taking."""
        req, tok = self._pair(model, rpm, tpm)
        wait = max(req.wait_for(1), tok.wait_for(tokens))
        if wait <= 0.0:
            req.take(1)
            tok.take(tokens)
        return wait

    def levels(self, model: str) -> tuple[float | None, float | None]:
        """(requests, tokens) left in the model's buckets now, taking nothing; None for a
        bucket without a limit or one never used (full)."""
        pair = self._buckets.get(model)
        if pair is None:
            return None, None
        return tuple(b.level() if b.capacity > 0 else None for b in pair)  # type: ignore[return-value]

    def adjust(self, model: str, delta_tokens: int, delta_requests: int = 0) -> None:
        """Correct the buckets once the real usage is known (positive: more was used,
        negative: a refund, e.g. of a request that never reached the upstream)."""
        pair = self._buckets.get(model)
        if pair is None:
            return
        if delta_requests:
            pair[0].take(delta_requests)
        if delta_tokens:
            pair[1].take(delta_tokens)


class MemoryRateLimits(RateLimiter):
    """`RateLimits` in this process: each replica has its own buckets."""

    async def acquire(self, model: str, rpm: int, tpm: int, tokens: int) -> float:
        return self.try_acquire(model, rpm, tpm, tokens)

    async def correct(self, model: str, rpm: int, tpm: int, delta_tokens: int,
                      delta_requests: int = 0) -> None:
        self.adjust(model, delta_tokens, delta_requests)


# KEYS[1]: the model's hash (rt/rl: request tokens and when, tt/tl: tokens and when).
# ARGV: now, rpm, tpm, requests, tokens, mode ('1' acquire: all or nothing; '0' correct).
_LUA = """
local now = tonumber(ARGV[1])
local caps = {tonumber(ARGV[2]), tonumber(ARGV[3])}
local want = {tonumber(ARGV[4]), tonumber(ARGV[5])}
local f = {{'rt', 'rl'}, {'tt', 'tl'}}
local level = {0, 0}
for i = 1, 2 do
  if caps[i] > 0 then
    local v = redis.call('HMGET', KEYS[1], f[i][1], f[i][2])
    local tok, last = tonumber(v[1]), tonumber(v[2])
    if tok == nil or last == nil then tok, last = caps[i], now end
    level[i] = math.min(caps[i], tok + math.max(0, now - last) * caps[i] / 60)
  end
end
if ARGV[6] == '1' then
  local wait = 0
  for i = 1, 2 do
    if caps[i] > 0 then
      local n = math.min(want[i], caps[i])
      if level[i] < n then wait = math.max(wait, (n - level[i]) * 60 / caps[i]) end
    end
  end
  if wait > 0 then return tostring(wait) end
end
for i = 1, 2 do
  if caps[i] > 0 then
    redis.call('HSET', KEYS[1], f[i][1], tostring(level[i] - want[i]), f[i][2], ARGV[1])
  end
end
redis.call('EXPIRE', KEYS[1], 120)
return '0'
"""


class RedisRateLimits:
    """`RateLimits` in Redis: every replica draws from the same buckets, atomically."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend

    async def _run(self, model: str, rpm: int, tpm: int, requests: int, tokens: int,
                   acquire: bool) -> float:
        try:
            out = await self.backend.run(
                "limits", _LUA, [self.backend.key("", "limits", model)],
                [repr(self.backend.clock()), rpm, tpm, requests, tokens, "1" if acquire else "0"])
        except StateUnavailable:  # logged and counted by the backend: let the call through
            return 0.0
        return float(out)

    async def acquire(self, model: str, rpm: int, tpm: int, tokens: int) -> float:
        if rpm <= 0 and tpm <= 0:
            return 0.0
        return await self._run(model, rpm, tpm, 1, tokens, True)

    async def correct(self, model: str, rpm: int, tpm: int, delta_tokens: int,
                      delta_requests: int = 0) -> None:
        if (rpm > 0 and delta_requests) or (tpm > 0 and delta_tokens):
            await self._run(model, rpm, tpm, delta_requests, delta_tokens, False)


def bucket_level(fields: list[bytes | str | None], cap: int, now: float) -> float | None:
    """The level of one bucket from its hash fields (tokens, when) as the Lua script keeps
    them: what `acquire` would see at `now` (None: never used, so full)."""
    if cap <= 0:
        return None
    tok, last = fields
    if tok is None or last is None:
        return float(cap)
    return min(float(cap), float(tok) + max(0.0, now - float(last)) * cap / 60.0)


def open_limits(backend: Backend) -> MemoryRateLimits | RedisRateLimits:
    """The rate limits on the configured backend."""
    if isinstance(backend, RedisBackend):
        return RedisRateLimits(backend)
    return MemoryRateLimits(backend.clock)
