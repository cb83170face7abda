"""Online learning totals: what Feedback taught a learned router, the same for every replica.

A learned router's online learning is additive: one feedback adds a per-task
weight column to the statistics of the model that answered (`dsum[:, j]`,
`dcnt[:, j]`). The totals of those additions are kept per artifact (an id that
changes with the artifact, so a new one starts fresh), every replica applies
the same totals to the artifact's own statistics, and they outlive a restart.

`MemoryLearning` keeps them in this process. `RedisLearning` keeps one hash per
artifact (`rc:{%}:learn:<artifact>`: a field per cell, plus a version `v`)
added to by one Lua script; replicas poll `v` and reload the totals when it
moves. It has no TTL: it is the learned state, tasks x models numbers.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from routecore.state.backend import Backend, RedisBackend

F64 = npt.NDArray[np.float64]
Totals = tuple[F64, F64, int]  # (sum of score x weight, sum of weight, version)


class Learning(Protocol):
    async def add(self, artifact: str, column: int, dsum: F64, dcnt: F64) -> int:
        """Add one feedback's per-task column to model `column`; returns the new version."""
        ...

    async def version(self, artifact: str) -> int:
        """How many feedbacks the totals hold (0: none)."""
        ...

    async def totals(self, artifact: str, n_tasks: int, n_models: int) -> Totals:
        """The totals as [n_tasks, n_models] arrays (zeros when nothing was learned)."""
        ...


class MemoryLearning:
    """Totals in this process."""

    def __init__(self) -> None:
        self._totals: dict[str, tuple[dict[tuple[int, int], float],
                                      dict[tuple[int, int], float], int]] = {}

    def _get(self, artifact: str) -> tuple[dict[tuple[int, int], float],
                                           dict[tuple[int, int], float], int]:
        return self._totals.get(artifact, ({}, {}, 0))

    async def add(self, artifact: str, column: int, dsum: F64, dcnt: F64) -> int:
        s, c, v = self._get(artifact)
        for i in range(len(dsum)):
            s[(i, column)] = s.get((i, column), 0.0) + float(dsum[i])
            c[(i, column)] = c.get((i, column), 0.0) + float(dcnt[i])
        self._totals[artifact] = (s, c, v + 1)
        return v + 1

    async def version(self, artifact: str) -> int:
        return self._get(artifact)[2]

    async def totals(self, artifact: str, n_tasks: int, n_models: int) -> Totals:
        s, c, v = self._get(artifact)
        return (*_arrays(s, c, n_tasks, n_models), v)


def _arrays(s: dict[tuple[int, int], float], c: dict[tuple[int, int], float], n_tasks: int,
            n_models: int) -> tuple[F64, F64]:
    ds, dc = np.zeros((n_tasks, n_models)), np.zeros((n_tasks, n_models))
    for (i, j), x in s.items():
        if i < n_tasks and j < n_models:
            ds[i, j] = x
    for (i, j), x in c.items():
        if i < n_tasks and j < n_models:
            dc[i, j] = x
    return ds, dc


# KEYS[1]: the artifact's hash. ARGV: column, then per task (dsum, dcnt). Returns the version.
_LUA_ADD = """
local j = ARGV[1]
for i = 1, (#ARGV - 1) / 2 do
  local s, c = ARGV[2 * i], ARGV[2 * i + 1]
  if s ~= '0' then redis.call('HINCRBYFLOAT', KEYS[1], 's' .. (i - 1) .. ':' .. j, s) end
  if c ~= '0' then redis.call('HINCRBYFLOAT', KEYS[1], 'c' .. (i - 1) .. ':' .. j, c) end
end
return redis.call('HINCRBY', KEYS[1], 'v', 1)
"""


class RedisLearning:
    """Totals in Redis: one hash per artifact, shared by every replica."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend

    def _key(self, artifact: str) -> str:
        return self.backend.key("", "learn", artifact)

    async def add(self, artifact: str, column: int, dsum: F64, dcnt: F64) -> int:
        args: list[object] = [column]
        for s, c in zip(dsum.tolist(), dcnt.tolist(), strict=True):
            args += [repr(s) if s else "0", repr(c) if c else "0"]
        return int(await self.backend.run("learn_add", _LUA_ADD, [self._key(artifact)], args))

    async def version(self, artifact: str) -> int:
        raw = await self.backend.call("learn_version", self.backend.client.hget,
                                      self._key(artifact), "v")
        return int(raw or 0)

    async def totals(self, artifact: str, n_tasks: int, n_models: int) -> Totals:
        raw = await self.backend.call("learn_totals", self.backend.client.hgetall,
                                      self._key(artifact))
        s: dict[tuple[int, int], float] = {}
        c: dict[tuple[int, int], float] = {}
        version = 0
        for k, x in raw.items():
            name = k.decode() if isinstance(k, bytes) else str(k)
            if name == "v":
                version = int(x)
                continue
            i, j = name[1:].split(":")
            (s if name[0] == "s" else c)[(int(i), int(j))] = float(x)
        return (*_arrays(s, c, n_tasks, n_models), version)


def open_learning(backend: Backend) -> MemoryLearning | RedisLearning:
    """Online learning totals on the configured backend."""
    if isinstance(backend, RedisBackend):
        return RedisLearning(backend)
    return MemoryLearning()
