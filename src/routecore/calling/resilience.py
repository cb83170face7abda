"""Resilience: the one place for retries, backoff, circuit breakers, rate limits and load.

- Retry with exponential backoff and full jitter, honouring Retry-After
  (`resilience.retry`). Only `Resilience.call` retries; nothing else sleeps
  between attempts.
- A circuit breaker per deployment (`resilience.breaker`; its rules are in
  routecore.state.breakers). A stream's verdict is given when it ends, so a
  stream cut after its first chunk is one failure, not a success plus a
  failure. It works with a single deployment: an open breaker makes the chain
  skip to the next model. `enabled: false` turns it off entirely: it never
  opens and never marks a model unhealthy.
- Time: a request never runs past the caller's deadline, nor past
  `resilience.total_timeout_s` when the caller set none. Retries of one
  deployment (their backoff sleeps and the retried tries) stay inside that
  deployment's fair share of the time left (`Deadline.share`), so the
  fallbacks after it still get theirs; the first try of each deployment may
  use min(provider timeout, time left).
- Client-side RPM/TPM token buckets per model (`ModelSpec.rate_limits`,
  `resilience.rate_limit`; routecore.state.limits).
- Breakers and rate limits live on the state backend: per process with
  `memory`, one per fleet with `redis` (every replica sees the same breaker
  and draws from the same buckets). Load stats stay per process.
- Deployment choice: among usable deployments not overloaded for their weight,
  weights are traffic shares (routecore.calling.balance);
  the rest follow by EWMA latency x (in-flight + 1) / weight (`resilience.load_balance`).

Clock, sleep and random source are injectable so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from routecore.calling.balance import SmoothWeighted, balanced
from routecore.calling.deadline import Deadline
from routecore.config import _Reader
from routecore.errors import DeadlineExceeded, ProviderError
from routecore.state.backend import Backend, MemoryBackend
from routecore.state.breakers import BreakerConfig, Breakers, CircuitBreaker, open_breakers
from routecore.state.limits import RateLimiter, RateLimits, TokenBucket, open_limits

__all__ = ["BreakerConfig", "CircuitBreaker", "RateLimiter", "Resilience", "ResilienceConfig",
           "RetryConfig", "RetryPolicy", "TokenBucket", "parse_resilience"]

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
# on_attempt(retry_index, error or None on success, duration in ms)
AttemptHook = Callable[[int, BaseException | None, float], None]

# Errors that say something about the deployment's health (they count for the
# breaker). A 400 or a context overflow proves the upstream is alive.
HEALTH_KINDS = frozenset({"server", "timeout", "connection", "rate_limit", "stream_cut", "auth",
                          "error"})


@dataclass(frozen=True, slots=True)
class RetryConfig:
    max_attempts: int = 2  # retries of one deployment after its first try (0: no retry)
    base_delay_ms: float = 100.0
    max_delay_ms: float = 2000.0
    honor_retry_after: bool = True
    max_retry_after_ms: float = 10000.0  # a longer Retry-After moves on to the next deployment


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    enabled: bool = True
    max_wait_ms: float = 0.0  # wait this long for a token before falling back


@dataclass(frozen=True, slots=True)
class LoadBalanceConfig:
    ewma_alpha: float = 0.3


@dataclass(frozen=True, slots=True)
class ResilienceConfig:
    total_timeout_s: float = 300.0  # a request's whole budget when the caller gave no deadline
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    rate_limit: RateLimitConfig = RateLimitConfig()
    load_balance: LoadBalanceConfig = LoadBalanceConfig()


def parse_resilience(raw: Any, problems: list[str]) -> ResilienceConfig:
    """Validate the `resilience` section; problems are appended with their exact paths."""
    r = _Reader()
    top = r.mapping(raw, "resilience", required=False)
    r.unknown(top, "resilience", {"total_timeout_s", "retry", "breaker", "rate_limit",
                                  "load_balance"})
    d = ResilienceConfig()
    total = _v(r.number(top, "total_timeout_s", "resilience", lo=0.001,
                        default=d.total_timeout_s), d.total_timeout_s)
    p = "resilience.retry"
    n = r.mapping(top.get("retry"), p, required=False)
    r.unknown(n, p, {"max_attempts", "base_delay_ms", "max_delay_ms", "honor_retry_after",
                     "max_retry_after_ms"})
    retry = RetryConfig(
        max_attempts=_v(r.number(n, "max_attempts", p, lo=0, integer=True,
                                 default=d.retry.max_attempts), d.retry.max_attempts),
        base_delay_ms=_v(r.number(n, "base_delay_ms", p, lo=0.0, default=d.retry.base_delay_ms),
                         d.retry.base_delay_ms),
        max_delay_ms=_v(r.number(n, "max_delay_ms", p, lo=0.0, default=d.retry.max_delay_ms),
                        d.retry.max_delay_ms),
        honor_retry_after=_v(r.get(n, "honor_retry_after", p, bool, True), True),
        max_retry_after_ms=_v(r.number(n, "max_retry_after_ms", p, lo=0.0,
                                       default=d.retry.max_retry_after_ms),
                              d.retry.max_retry_after_ms),
    )
    if retry.max_delay_ms < retry.base_delay_ms:
        r.fail(f"{p}.max_delay_ms", "must be >= base_delay_ms")
    p = "resilience.breaker"
    n = r.mapping(top.get("breaker"), p, required=False)
    r.unknown(n, p, {"enabled", "failure_threshold", "window_s", "cooldown_s", "failure_rate",
                     "min_calls"})
    breaker = BreakerConfig(
        enabled=_v(r.get(n, "enabled", p, bool, True), True),
        failure_threshold=_v(r.number(n, "failure_threshold", p, lo=1, integer=True,
                                      default=d.breaker.failure_threshold),
                             d.breaker.failure_threshold),
        window_s=_v(r.number(n, "window_s", p, lo=0.001, default=d.breaker.window_s),
                    d.breaker.window_s),
        cooldown_s=_v(r.number(n, "cooldown_s", p, lo=0.0, default=d.breaker.cooldown_s),
                      d.breaker.cooldown_s),
        failure_rate=_v(r.number(n, "failure_rate", p, lo=0.01, hi=1.0,
                                 default=d.breaker.failure_rate), d.breaker.failure_rate),
        min_calls=_v(r.number(n, "min_calls", p, lo=1, integer=True,
                              default=d.breaker.min_calls), d.breaker.min_calls),
    )
    p = "resilience.rate_limit"
    n = r.mapping(top.get("rate_limit"), p, required=False)
    r.unknown(n, p, {"enabled", "max_wait_ms"})
    rate = RateLimitConfig(
        enabled=_v(r.get(n, "enabled", p, bool, True), True),
        max_wait_ms=_v(r.number(n, "max_wait_ms", p, lo=0.0, default=0.0), 0.0),
    )
    p = "resilience.load_balance"
    n = r.mapping(top.get("load_balance"), p, required=False)
    r.unknown(n, p, {"ewma_alpha"})
    lb = LoadBalanceConfig(ewma_alpha=_v(r.number(n, "ewma_alpha", p, lo=0.001, hi=1.0,
                                                  default=0.3), 0.3))
    problems.extend(r.problems)
    return ResilienceConfig(total_timeout_s=total, retry=retry, breaker=breaker, rate_limit=rate,
                            load_balance=lb)


def _v(value: Any, default: Any) -> Any:
    return default if value is None else value


class RetryPolicy:
    """Exponential backoff with full jitter; a Retry-After is a floor on the delay."""

    def __init__(self, config: RetryConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.Random()

    def delay(self, retry: int, error: BaseException | None = None) -> float | None:
        """Seconds to wait before retry `retry + 1`, or None to give up on this deployment."""
        c = self.config
        if retry >= c.max_attempts:
            return None
        if isinstance(error, ProviderError) and not error.retryable:
            return None
        cap = min(c.max_delay_ms, c.base_delay_ms * (2.0 ** retry)) / 1000.0
        delay = self._rng.uniform(0.0, cap)
        after = error.retry_after if isinstance(error, ProviderError) else None
        if after is not None and c.honor_retry_after:
            if after * 1000.0 > c.max_retry_after_ms:
                return None
            delay = max(delay, after)
        return delay


@dataclass(slots=True)
class DeploymentStats:
    in_flight: int = 0
    ewma_ms: float | None = None
    blocked_until: float = 0.0  # set by a Retry-After: other requests skip it until then


class Resilience:
    """Breakers, load stats and rate limiters for one process, plus the retry loop."""

    def __init__(self, config: ResilienceConfig | None = None, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep, rng: random.Random | None = None,
                 state: Backend | None = None) -> None:
        self.config = config or ResilienceConfig()
        self.clock = clock
        self.sleep = sleep
        self.retry = RetryPolicy(self.config.retry, rng)
        # Without a configured backend: this process's memory, on the injected clock.
        state = state if state is not None else MemoryBackend(clock=clock)
        self.breakers: Breakers = open_breakers(state, self.config.breaker)
        self.limits: RateLimits = open_limits(state)
        self._stats: dict[str, DeploymentStats] = {}
        self._shares = SmoothWeighted()

    def stats(self, key: str) -> DeploymentStats:
        s = self._stats.get(key)
        if s is None:
            s = self._stats[key] = DeploymentStats()
        return s

    def order(self, keys: Sequence[str], weights: Sequence[float]) -> list[int]:
        """Indices of deployments in the order to try them.

        First: among usable deployments (weight > 0, breaker not open, not cooling
        down) that are `balanced` (not overloaded for their weight, not much slower),
        one picked by weight, so weights are traffic shares. Then the others, least
        loaded first by EWMA latency x (in-flight + 1) / weight (unmeasured score 0);
        weight 0 (drained) goes last.
        """
        def score(i: int) -> tuple[int, float, int]:
            s = self.stats(keys[i])
            w = weights[i]
            if w <= 0:
                return (1, 0.0, i)
            return (0, (s.ewma_ms or 0.0) * (s.in_flight + 1) / w + s.in_flight * 1e-6, i)
        rest = sorted(range(len(keys)), key=score)
        now = self.clock()
        usable = [i for i in rest if weights[i] > 0 and self.stats(keys[i]).blocked_until <= now
                  and self.breakers.state(keys[i]) != "open"]
        if len(usable) < 2:
            return rest
        tied = sorted(balanced(
            [(self.stats(keys[i]).in_flight, weights[i], self.stats(keys[i]).ewma_ms or 0.0)
             for i in usable], usable))
        first = tied[self._shares.pick([keys[i] for i in tied], [weights[i] for i in tied])]
        return [first, *(i for i in rest if i != first)]

    async def verdict(self, key: str, ok: bool | None) -> None:
        """The late verdict of a call made with `call(..., late_verdict=True)` (a stream,
        judged when it ends): True a success, False a failure, None no verdict (the
        caller went away)."""
        if ok is None:
            await self.breakers.release(key)
        else:
            await self.breakers.record(key, failed=not ok)

    async def call(self, key: str, fn: Callable[[float], Awaitable[T]], *, timeout: float,
                   deadline: Deadline, on_attempt: AttemptHook, late_verdict: bool = False,
                   share: Deadline | None = None) -> T:
        """Call `fn(attempt_timeout)` on one deployment, retrying retryable failures.

        Each try runs under min(`timeout`, the deadline's remaining time); retries
        (backoff and the retried try) also end at `share`, this deployment's part
        of the deadline when other deployments are still to be tried. Raises
        the last ProviderError when this deployment is given up (not retryable,
        retries spent, breaker open, Retry-After too long or past the deadline)
        and DeadlineExceeded when the deadline ran out. With `late_verdict` a
        success is not yet counted: the caller reports it with `verdict()`.
        """
        retry = 0
        stats = self.stats(key)
        breakers = self.breakers
        while True:
            now = self.clock()
            if stats.blocked_until > now and retry == 0:
                err = ProviderError(f"cooling down after 429 for {stats.blocked_until - now:.3f}s",
                                    retryable=False, kind="rate_limit")
                on_attempt(retry, err, 0.0)
                raise err
            if not await breakers.allow(key):
                err = ProviderError("circuit open", retryable=False, kind="circuit_open")
                on_attempt(retry, err, 0.0)
                raise err
            try:
                attempt_timeout = deadline.attempt_timeout(timeout)
            except DeadlineExceeded:
                await breakers.release(key)
                raise
            left = share.remaining() if retry and share is not None else None
            if left is not None:
                attempt_timeout = min(attempt_timeout, max(left, 0.001))
            stats.in_flight += 1
            started = self.clock()
            error: ProviderError
            try:
                async with asyncio.timeout(attempt_timeout):
                    result = await fn(attempt_timeout)
            except TimeoutError:
                error = ProviderError(f"timed out after {attempt_timeout * 1000:.0f} ms",
                                      kind="timeout")
            except ProviderError as exc:
                error = exc
            except BaseException:
                await breakers.release(key)
                raise
            else:
                ms = (self.clock() - started) * 1000.0
                self._observe(stats, ms)
                if not late_verdict:
                    await breakers.record(key, failed=False)
                on_attempt(retry, None, ms)
                return result
            finally:
                stats.in_flight -= 1
            ms = (self.clock() - started) * 1000.0
            if error.kind == "timeout" and (attempt_timeout < timeout or deadline.expired()):
                if attempt_timeout < timeout:  # our time budget, not the upstream, cut it
                    await breakers.release(key)
                    # Nor is it the upstream's error or latency (the caller chose the time):
                    # kind "deadline" is no quality signal and no latency sample.
                    error = ProviderError(f"{error.message} (the request's time ran out)",
                                          kind="deadline")
                else:
                    await breakers.record(key, failed=True)
                if not deadline.expired():  # only this deployment's share ran out: move on
                    on_attempt(retry, error, ms)
                    raise error
                on_attempt(retry, DeadlineExceeded("deadline exceeded"), ms)
                raise DeadlineExceeded(f"deadline exceeded during a call to {key}")
            if error.kind in HEALTH_KINDS:
                await breakers.record(key, failed=True)
            else:
                await breakers.record(key, failed=False)
            on_attempt(retry, error, ms)
            if error.retry_after is not None:
                stats.blocked_until = max(stats.blocked_until, self.clock() + error.retry_after)
            delay = self.retry.delay(retry, error)
            remaining = (share or deadline).remaining()
            if delay is None or (remaining is not None and delay >= remaining):
                raise error
            await self.sleep(delay)
            retry += 1

    def _observe(self, stats: DeploymentStats, ms: float) -> None:
        a = self.config.load_balance.ewma_alpha
        stats.ewma_ms = ms if stats.ewma_ms is None else a * ms + (1 - a) * stats.ewma_ms


def describe(config: ResilienceConfig) -> Mapping[str, Any]:
    """The effective settings, for a startup log line."""
    return {"retry": config.retry, "breaker": config.breaker, "rate_limit": config.rate_limit}
