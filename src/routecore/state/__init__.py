"""Shared state: what must be global across replicas lives here, in memory or in Redis.

Config (validated by `parse_state`; `memory` is the embedded default)::

    state: {backend: redis, redis_url: "redis://127.0.0.1:6379/0", fail_open: false}

`open_backend(config)` gives a `MemoryBackend` or a `RedisBackend`; the server
starts one at start-up (`await backend.start()`: the Redis client and its one
connection pool) and closes it on shutdown. Each *kind* of state (budget
ledger, rate limits, breakers, recent decisions, ...) is built on that backend.

How to add a kind (see `ledger.py`, the budgets' kind, as the model):

1. A new module `state/<kind>.py` with a small `Protocol` naming the operations
   the callers need (async; a hot-path read may also be sync on the memory side).
2. `Memory<Kind>(backend: MemoryBackend)`: plain dicts, no await inside an
   operation (so each is atomic in the one event loop), `backend.clock` for time.
3. `Redis<Kind>(backend: RedisBackend)`: every read-modify-write is ONE Lua
   script run with `await backend.run(name, lua, keys, args)` (registered once,
   atomic, one round trip; a Redis failure comes back as `StateUnavailable`,
   already logged and counted in `backend.failures`). Keys come from
   `backend.key(tenant, "<kind>", ...)`, which puts the tenant in a hash tag
   (`rc:{acme}:<kind>:...`) so one tenant's keys share a Cluster slot; state
   that is not per tenant uses a fixed tag such as `backend.key("", ...)`.
   Every key gets a TTL (EXPIREAT in the script) that outlives its window and
   no longer. Pass `backend.clock()` as an argument instead of reading server
   time, so tests can move time on both backends alike.
4. `open_<kind>(backend)` picks the implementation by backend type.
5. Tests: one contract suite over both backends with the `state_backend`
   fixture (tests/conftest.py; Redis is the real `redis_url` server, never a
   mock): the memory kind must behave exactly as the Redis one.
"""

from routecore.state.backend import (
    Backend,
    MemoryBackend,
    RedisBackend,
    StateConfig,
    open_backend,
    parse_state,
)

__all__ = ["Backend", "MemoryBackend", "RedisBackend", "StateConfig", "open_backend",
           "parse_state"]
