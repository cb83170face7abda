"""Observed load per model, shared by the fleet: decayed latency percentiles, calls in
flight, rate-limit headroom.

Complete's calls report here (`started(model)` / `finished(model)` around a model's
calls, `observe(model, ms)` per upstream call); the router reads `snapshot()`, which
never waits: it returns the last `LoadSnapshot` and, when that is older than
`refresh_s`, starts one rebuild in the background (memory: from this process's
histograms and buckets; Redis: two pipelined reads of what every replica wrote).

Latency: per model, a histogram over log-spaced buckets (each 10% wider than the
last, from 1 ms to about an hour: percentiles within ~5%) whose weights halve
every `half_life_s`, by forward decay: an observation at time t adds
2**((t - L) / h) to its bucket, L the start of its epoch (`EPOCH_HALF_LIVES`
half-lives long), and a read at `now` scales each epoch by 2**(-(now - L) / h).
So recording is one increment (on Redis an HINCRBYFLOAT queued off the request
path through a `WriteBehind`) and decay never rewrites anything. The current and
previous epochs are read (an older observation weighs under 2**-32); each epoch's
key expires two epochs after it starts (`rc:{%}:load:lat:<model>:<epoch>`).

In flight: each process counts its own calls; on Redis each publishes its counts
at every refresh (`rc:{%}:load:inflight:<replica>`, gone 3 refreshes after its
process stops) and sums the other live replicas' (`rc:{%}:load:replicas`).

Rate-limit headroom: the RPM/TPM buckets of state/limits.py, read without taking.
With Redis unreachable (logged once per outage by the backend) the last snapshot
stays: routing goes on with what was last seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from routecore.domain import LoadSnapshot, ModelLoad
from routecore.errors import StateUnavailable
from routecore.state.backend import Backend, RedisBackend
from routecore.state.limits import RateLimiter, bucket_level
from routecore.state.writer import WriteBehind

F64 = npt.NDArray[np.float64]
RATIO = 1.1  # each latency bucket's upper edge over its lower one
N_BUCKETS = 160  # bucket 0: under 1 ms; bucket k: [RATIO**(k-1), RATIO**k) ms; the last: above
EPOCH_HALF_LIVES = 32
_LOG_RATIO = math.log(RATIO)
_EDGES: F64 = np.concatenate(([0.0], RATIO ** np.arange(N_BUCKETS)))  # lower edges, then top


@dataclass(frozen=True, slots=True)
class ObservedConfig:
    half_life_s: float = 60.0  # an observation's weight halves this often
    refresh_s: float = 0.5  # the router's snapshot is at most this old (plus one read)


def bucket_of(ms: float) -> int:
    """The histogram bucket of a latency in ms."""
    if not ms >= 1.0:  # NaN and negatives land in the first bucket too
        return 0
    return min(N_BUCKETS - 1, int(math.log(ms) / _LOG_RATIO) + 1)


def percentiles(counts: F64, qs: Sequence[float]) -> tuple[F64, list[F64]]:
    """(total weight, the `qs` quantiles in ms) of each row of histograms `counts`
    (models x N_BUCKETS), all rows at once; NaN quantiles for an empty row. Linear inside
    a bucket; the last bucket reads as its lower edge."""
    cum = np.cumsum(counts, axis=1)
    total = cum[:, -1]
    rows = np.arange(len(counts))
    out = []
    for q in qs:
        target = q * total
        k = np.minimum((cum < target[:, None] - 1e-12 * total[:, None]).sum(axis=1),
                       N_BUCKETS - 1)
        prev = np.where(k > 0, cum[rows, np.maximum(k - 1, 0)], 0.0)
        here = counts[rows, k]
        frac = np.clip(np.divide(target - prev, here, out=np.zeros_like(here),
                                 where=here > 0), 0.0, 1.0)
        lo, hi = _EDGES[k], _EDGES[k + 1]
        value = np.where(k == N_BUCKETS - 1, lo, lo + (hi - lo) * frac)
        out.append(np.where(total > 1e-12, value, np.nan))
    return total, out


class Observed(Protocol):
    """What Complete's calls report and the router reads."""

    def started(self, model: str) -> None: ...

    def finished(self, model: str) -> None: ...

    def observe(self, model: str, ms: float) -> None:
        """One upstream call of `model` took `ms` (a success, or a timeout: at least that)."""
        ...

    def snapshot(self) -> LoadSnapshot:
        """The last snapshot, without waiting (a stale one starts a rebuild)."""
        ...

    async def refresh(self) -> LoadSnapshot: ...

    async def aclose(self) -> None: ...


class MemoryObserved:
    """`Observed` in this process (the memory backend: each replica sees its own calls)."""

    def __init__(self, backend: Backend, config: ObservedConfig, models: Sequence[str],
                 limits: Mapping[str, tuple[int, int]],
                 buckets: RateLimiter | None = None) -> None:
        self.config = config
        self.clock: Callable[[], float] = backend.clock
        self.models = tuple(models)
        self.limits = dict(limits)  # model -> (rpm, tpm), models with a limit only
        self._buckets = buckets
        self._epoch_s = EPOCH_HALF_LIVES * config.half_life_s
        self._in_flight: dict[str, int] = {}
        self._hist: dict[str, dict[int, F64]] = {}
        self._snap = LoadSnapshot(0, -math.inf, {})
        self._task: asyncio.Task[Any] | None = None
        self.failures = 0  # refreshes that failed (Redis down); the old snapshot stayed

    # -- what the calls report --------------------------------------------------

    def started(self, model: str) -> None:
        self._in_flight[model] = self._in_flight.get(model, 0) + 1

    def finished(self, model: str) -> None:
        n = self._in_flight.get(model, 0) - 1
        if n > 0:
            self._in_flight[model] = n
        else:
            self._in_flight.pop(model, None)

    def _weight(self, now: float) -> tuple[int, float]:
        """(epoch, forward-decay weight) of an observation at `now`."""
        epoch = int(now // self._epoch_s)
        return epoch, 2.0 ** ((now - epoch * self._epoch_s) / self.config.half_life_s)

    def observe(self, model: str, ms: float) -> None:
        epoch, w = self._weight(self.clock())
        epochs = self._hist.setdefault(model, {})
        counts = epochs.get(epoch)
        if counts is None:
            counts = epochs[epoch] = np.zeros(N_BUCKETS)
            for old in [e for e in epochs if e < epoch - 1]:
                del epochs[old]
        counts[bucket_of(ms)] += w

    # -- what the router reads ---------------------------------------------------

    def snapshot(self) -> LoadSnapshot:
        snap = self._snap
        if self.clock() - snap.at >= self.config.refresh_s and self._task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a test, a script): rebuild in place
                return self._build(self._read_local())
            self._task = loop.create_task(self._refresh_task())
        return snap

    async def _refresh_task(self) -> None:
        try:
            await self.refresh()
        except StateUnavailable:
            self.failures += 1  # logged by the backend; the old snapshot stays
        finally:
            self._task = None

    async def refresh(self) -> LoadSnapshot:
        """Rebuild the snapshot now."""
        return self._build(self._read_local())

    def _read_local(self) -> tuple[dict[str, dict[int, F64]], dict[str, int],
                                   dict[str, tuple[float | None, float | None]]]:
        levels = {}
        for model in self.limits:
            levels[model] = (self._buckets.levels(model) if self._buckets is not None
                             else (None, None))
        return self._hist, dict(self._in_flight), levels

    def _build(self, read: tuple[Mapping[str, Mapping[int, F64]], Mapping[str, int],
                                 Mapping[str, tuple[float | None, float | None]]]
               ) -> LoadSnapshot:
        hist, in_flight, levels = read
        now = self.clock()
        h = self.config.half_life_s
        seen = [m for m in self.models if hist.get(m)]
        stats: dict[str, tuple[float, float, float]] = {}
        if seen:
            counts = np.zeros((len(seen), N_BUCKETS))
            for row, model in enumerate(seen):
                for epoch, c in hist[model].items():
                    counts[row] += c * 2.0 ** (-(now - epoch * self._epoch_s) / h)
            total, (p50, p95) = percentiles(counts, (0.5, 0.95))
            stats = {m: (t, a, b) for m, t, a, b in zip(seen, total.tolist(), p50.tolist(),
                                                         p95.tolist(), strict=True)}
        models: dict[str, ModelLoad] = {}
        nan = (0.0, math.nan, math.nan)
        for model in self.models:
            calls, p50_ms, p95_ms = stats.get(model, nan)
            rpm, tpm = self.limits.get(model, (0, 0))
            flying = in_flight.get(model, 0)
            if calls < 1e-3 and not flying and not rpm and not tpm:
                continue  # nothing seen, nothing limited: the prior alone speaks
            rl, tl = levels.get(model, (None, None))
            models[model] = ModelLoad(
                calls=calls, p50_ms=p50_ms, p95_ms=p95_ms, in_flight=flying,
                rpm_left=(float(rpm) if rl is None else rl) if rpm > 0 else None,
                tpm_left=(float(tpm) if tl is None else tl) if tpm > 0 else None,
                rpm=rpm, tpm=tpm)
        self._snap = LoadSnapshot(self._snap.version + 1, now, models)
        return self._snap

    async def aclose(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class RedisObserved(MemoryObserved):
    """`Observed` on Redis: every replica's calls, in flight counts and buckets."""

    def __init__(self, backend: RedisBackend, config: ObservedConfig, models: Sequence[str],
                 limits: Mapping[str, tuple[int, int]]) -> None:
        super().__init__(backend, config, models, limits)
        self.backend = backend
        self.replica = secrets.token_hex(6)
        self._writer = WriteBehind(backend, "observed")
        self._ttl = int(2 * self._epoch_s) + 60

    def _key(self, *parts: str) -> str:
        return self.backend.key("", "load", *parts)

    def observe(self, model: str, ms: float) -> None:
        epoch, w = self._weight(self.clock())
        key = self._key("lat", model, str(epoch))
        self._writer.submit(None, [("hincrbyfloat", (key, str(bucket_of(ms)), repr(w)), {}),
                                   ("expire", (key, self._ttl), {})])

    async def refresh(self) -> LoadSnapshot:
        now = self.clock()
        stale = 3.0 * self.config.refresh_s + 1.0
        epoch = int(now // self._epoch_s)
        mine = self._key("inflight", self.replica)
        replicas = self._key("replicas")
        client = self.backend.client
        pipe = client.pipeline(transaction=False)
        pipe.delete(mine)
        in_flight = dict(self._in_flight)  # as published (calls go on during the read)
        if in_flight:
            pipe.hset(mine, mapping=in_flight)
            pipe.expire(mine, math.ceil(stale))
        pipe.zadd(replicas, {self.replica: now})
        pipe.zremrangebyscore(replicas, "-inf", now - stale)
        pipe.expire(replicas, math.ceil(stale) + 60)
        pipe.zrange(replicas, 0, -1)
        for model in self.models:
            for e in (epoch - 1, epoch):
                pipe.hgetall(self._key("lat", model, str(e)))
        for model in self.limits:
            pipe.hmget(self.backend.key("", "limits", model), "rt", "rl", "tt", "tl")
        out = await self.backend.call("observed", pipe.execute)
        k = 4 + (2 if in_flight else 0)  # the zrange's answer
        others = [r.decode() if isinstance(r, bytes) else str(r) for r in out[k]]
        others = [r for r in others if r != self.replica]
        k += 1
        hist: dict[str, dict[int, F64]] = {}
        for model in self.models:
            for e in (epoch - 1, epoch):
                raw = out[k]
                k += 1
                if raw:
                    counts = np.zeros(N_BUCKETS)
                    for field, value in raw.items():
                        b = int(field)
                        if 0 <= b < N_BUCKETS:
                            counts[b] += float(value)
                    hist.setdefault(model, {})[e] = counts
        levels: dict[str, tuple[float | None, float | None]] = {}
        for model, (rpm, tpm) in self.limits.items():
            v = out[k]
            k += 1
            levels[model] = (bucket_level(v[0:2], rpm, now), bucket_level(v[2:4], tpm, now))
        if others:
            pipe = client.pipeline(transaction=False)
            for r in others:
                pipe.hgetall(self._key("inflight", r))
            for counts_of in await self.backend.call("observed", pipe.execute):
                for field, value in counts_of.items():
                    name = field.decode() if isinstance(field, bytes) else str(field)
                    in_flight[name] = in_flight.get(name, 0) + int(value)
        return self._build((hist, in_flight, levels))

    async def aclose(self) -> None:
        await super().aclose()
        await self._writer.aclose()
        # This replica's calls are over: others stop counting them now (Redis down: the
        # key expires by itself).
        with contextlib.suppress(StateUnavailable):
            await self.backend.call("observed", self.backend.client.delete,
                                    self._key("inflight", self.replica))


def open_observed(backend: Backend, config: ObservedConfig, models: Sequence[str],
                  limits: Mapping[str, tuple[int, int]],
                  buckets: RateLimiter | None = None) -> MemoryObserved:
    """The observed load on the configured backend; `limits` (model -> (rpm, tpm)) names
    the models whose buckets to read; `buckets`: the memory backend's rate limiter."""
    if isinstance(backend, RedisBackend):
        return RedisObserved(backend, config, models, limits)
    return MemoryObserved(backend, config, models, limits, buckets)
