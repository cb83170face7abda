"""The state backends: where shared state lives (one process's memory, or Redis).

    state = open_backend(parse_state(config.extra.get("state")))   # at start-up
    await state.start()          # Redis: one connection pool, a PING (a failure is logged, not fatal)
    ...                          # kinds (budgets, limits, ...) are built on it, see state/__init__.py
    await state.aclose()         # on shutdown

`MemoryBackend` is the embedded default: state is per process. `RedisBackend`
holds one `redis.asyncio` client (hiredis parser, one pool) shared by every
kind; `run` executes a kind's Lua script and turns a Redis failure into
`StateUnavailable` after logging it and counting it in `failures`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import structlog

from routecore.config import _Reader
from routecore.errors import ConfigError, StateUnavailable

log = structlog.get_logger("routecore.state")

BACKENDS = ("memory", "redis")
_URL_SCHEMES = ("redis://", "rediss://", "unix://")
Clock = Callable[[], float]  # wall-clock seconds (UTC epoch): windows are calendar periods


@dataclass(frozen=True, slots=True)
class StateConfig:
    """The validated `state` section."""

    backend: str = "memory"
    redis_url: str = ""
    fail_open: bool = False  # Redis down: let budgeted calls through instead of UNAVAILABLE
    timeout_s: float = 1.0  # per Redis command; a dead server must not stall requests
    max_connections: int = 64  # the one pool's size (per process)


def parse_state(raw: Any, problems: list[str] | None = None) -> StateConfig:
    """Validate the `state` section; with `problems` they are appended, else raised."""
    r, p, d = _Reader(), "state", StateConfig()
    n = r.mapping(raw, p, required=False)
    r.unknown(n, p, {"backend", "redis_url", "fail_open", "timeout_s", "max_connections"})
    backend = r.get(n, "backend", p, str, d.backend) or d.backend
    if backend not in BACKENDS:
        r.fail(f"{p}.backend", f"must be one of {', '.join(BACKENDS)}")
    url = r.get(n, "redis_url", p, str, "") or ""
    if backend == "redis" and not url:
        r.fail(f"{p}.redis_url", "is required when backend is redis")
    elif url and not url.startswith(_URL_SCHEMES):
        r.fail(f"{p}.redis_url", f"must start with {', '.join(_URL_SCHEMES)}")
    timeout = r.number(n, "timeout_s", p, lo=0.01, hi=60.0, default=d.timeout_s)
    conns = r.number(n, "max_connections", p, lo=1, hi=10_000, integer=True,
                     default=d.max_connections)
    cfg = StateConfig(backend=backend, redis_url=url,
                      fail_open=bool(r.get(n, "fail_open", p, bool, False)),
                      timeout_s=d.timeout_s if timeout is None else timeout,
                      max_connections=conns or d.max_connections)
    if problems is None and r.problems:
        raise ConfigError(r.problems)
    if problems is not None:
        problems.extend(r.problems)
    return cfg


def per_process_warning(config: StateConfig, workers: int) -> str | None:
    """What `serve --workers N` should say at start-up about where state lives."""
    if workers > 1 and config.backend == "memory":
        return (f"state.backend is memory: with {workers} workers, budgets, rate limits and "
                f"feedback are per process; set state.backend: redis for one global state")
    return None


def tag(tenant: str) -> str:
    """A tenant as a key's hash tag body: escaped so `{`, `}`, `:` cannot break the key;
    the empty tenant (no identity) is `%`, which no escaped name can be."""
    return quote(tenant, safe="") or "%"


class MemoryBackend:
    """The embedded default: every kind keeps its state in this process."""

    kind = "memory"

    def __init__(self, config: StateConfig | None = None, clock: Clock = time.time) -> None:
        self.config = config or StateConfig()
        self.clock = clock
        self.failures = 0  # never incremented: memory does not fail; kept for one metric shape

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class RedisBackend:
    """One Redis client (and connection pool) for every kind of shared state."""

    kind = "redis"

    def __init__(self, config: StateConfig, clock: Clock = time.time) -> None:
        self.config = config
        self.clock = clock
        self.failures = 0  # Redis errors seen (metric-ready: a plain monotonically rising int)
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._down = False

    async def start(self) -> None:
        """Create the client and its pool (once) and check the server answers."""
        if self._client is None:
            from redis.asyncio import BlockingConnectionPool, Redis  # at start-up, not import
            from redis.asyncio.retry import Retry  # the sync Retry warns on an asyncio pool
            from redis.backoff import NoBackoff
            from redis.utils import HIREDIS_AVAILABLE

            if not HIREDIS_AVAILABLE:
                log.warning("redis_without_hiredis", hint="pip install 'redis[hiredis]'")
            t = self.config.timeout_s
            # One pool for the process; a burst waits (up to the timeout) for a free
            # connection instead of failing. One immediate reconnect for a connection
            # the server closed (a restart); no backoff loop: that is resilience.py's job.
            pool = BlockingConnectionPool.from_url(
                self.config.redis_url, max_connections=self.config.max_connections, timeout=t,
                socket_timeout=t, socket_connect_timeout=t, retry=Retry(NoBackoff(), 1),
                health_check_interval=30)
            self._client = Redis(connection_pool=pool)
        try:
            await self._client.ping()
        except Exception as exc:  # start serving anyway: budgets fail closed, routing works
            self._failed(exc, "ping")
        else:
            log.info("redis_connected", url=_safe_url(self.config.redis_url))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> Any:
        """The shared `redis.asyncio.Redis` (after `start`)."""
        if self._client is None:
            raise RuntimeError("RedisBackend.start() was not awaited")
        return self._client

    def key(self, tenant: str, *parts: str) -> str:
        """`rc:{tenant}:part:part`: a tenant's keys share one Redis Cluster slot."""
        return f"rc:{{{tag(tenant)}}}:" + ":".join(parts)

    async def run(self, name: str, lua: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a kind's Lua script (registered once, by `name`) atomically on the server."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.client.register_script(lua)
        return await self.call(name, script, keys=list(keys), args=list(args))

    async def call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Await `fn(*args, **kw)` against Redis; a failure is logged, counted, re-raised as
        `StateUnavailable` naming the operation."""
        from redis.exceptions import RedisError

        try:
            out = await fn(*args, **kw)
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._failed(exc, what) from exc
        if self._down:
            self._down = False
            log.warning("redis_recovered", url=_safe_url(self.config.redis_url))
        return out

    def _failed(self, exc: BaseException, what: str) -> StateUnavailable:
        self.failures += 1
        if not self._down:  # one clear line per outage, not one per request
            self._down = True
            log.error("redis_unavailable", op=what, url=_safe_url(self.config.redis_url),
                      error=f"{type(exc).__name__}: {exc}"[:300], fail_open=self.config.fail_open)
        return StateUnavailable(f"state backend (redis) unavailable during {what}: "
                                f"{type(exc).__name__}: {exc}"[:300])


Backend = MemoryBackend | RedisBackend


def open_backend(config: StateConfig, clock: Clock = time.time) -> Backend:
    """The configured backend (not started: `await backend.start()` in the serving loop)."""
    if config.backend == "redis":
        return RedisBackend(config, clock)
    return MemoryBackend(config, clock)


def _safe_url(url: str) -> str:
    """The URL without its password (never log a secret)."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
