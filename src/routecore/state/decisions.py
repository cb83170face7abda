"""Recent decisions: what was decided for a request id, so Feedback can name it.

A decision belongs to its owner (the caller's tenant when auth is on): it is
stored and looked up under (owner, request id), so another owner's lookup
finds nothing, exactly as for an id that never existed; the first decision
recorded for an id stays (a caller-chosen id never replaces one).

`put` is synchronous and cheap (the Route path). `MemoryDecisions` keeps the
latest decisions in this process, bounded by count and by total prompt
characters. `RedisDecisions` hands each one to a bounded queue that one writer
task flushes in pipelines of `SET key value NX EX ttl`
(`rc:{owner}:decision:<id>`, kept `RECENT_TTL_S`), so a Feedback may arrive at
any replica; a full queue drops the record and counts it, it never blocks.
Prompts are stored up to `MAX_TEXT` characters there.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from routecore.state.backend import Backend, RedisBackend
from routecore.state.writer import QUEUE, WriteBehind

RECENT = 100_000
# Recent decisions keep their prompt text; bound the total too, or 100k long
# prompts (up to 4M chars each) could hold gigabytes.
RECENT_CHARS = 64_000_000
RECENT_TTL_S = 3600  # Redis: how long a decision can still be named by Feedback
MAX_TEXT = 100_000  # Redis: prompt characters kept per decision
# Redis: a lookup that misses asks again after these pauses (0.1 s in all): a Feedback
# sent right after its Route may reach a replica before the deciding one's writer flushed.
WRITE_GRACE_S = (0.01, 0.03, 0.06)


@dataclass(frozen=True, slots=True)
class Recent:
    text: str
    model: str
    cost_usd: float
    variant: str


class RecentDecisions(Protocol):
    def put(self, owner: str, request_id: str, rec: Recent) -> None:
        """Remember a decision (first one wins), without waiting."""
        ...

    async def get(self, owner: str, request_id: str) -> Recent | None:
        """`owner`'s decision for `request_id`, if still known."""
        ...

    async def aclose(self) -> None:
        """Flush what is pending."""
        ...


class MemoryDecisions:
    """The latest decisions of this process, bounded by count and prompt characters."""

    def __init__(self, capacity: int = RECENT, max_chars: int = RECENT_CHARS) -> None:
        self._recent: OrderedDict[tuple[str, str], Recent] = OrderedDict()
        self._capacity = capacity
        self._max_chars = max_chars
        self._chars = 0

    def put(self, owner: str, request_id: str, rec: Recent) -> None:
        key = (owner, request_id)
        if key in self._recent:
            return
        self._recent[key] = rec
        self._chars += len(rec.text)
        while len(self._recent) > self._capacity or (
                self._chars > self._max_chars and len(self._recent) > 1):
            self._chars -= len(self._recent.popitem(last=False)[1].text)

    async def get(self, owner: str, request_id: str) -> Recent | None:
        return self._recent.get((owner, request_id))

    async def aclose(self) -> None:
        return None


class RedisDecisions:
    """Decisions in Redis for every replica; written behind by one task, in pipelines."""

    def __init__(self, backend: RedisBackend, ttl_s: int = RECENT_TTL_S,
                 queue_size: int = QUEUE) -> None:
        self.backend = backend
        self.ttl_s = ttl_s
        self._pending: dict[str, Recent] = {}  # queued, not yet in Redis: this replica sees them
        self._writer = WriteBehind(backend, "decision_put", queue_size=queue_size,
                                   after=self._written)

    @property
    def dropped(self) -> int:
        """Decisions not stored: the queue was full, or Redis was down."""
        return self._writer.dropped

    def _key(self, owner: str, request_id: str) -> str:
        return self.backend.key(owner, "decision", request_id)

    def put(self, owner: str, request_id: str, rec: Recent) -> None:
        key = self._key(owner, request_id)
        if key in self._pending:
            return
        value = json.dumps([rec.text[:MAX_TEXT], rec.model, rec.cost_usd, rec.variant])
        if self._writer.submit(key, [("set", (key, value), {"nx": True, "ex": self.ttl_s})]):
            self._pending[key] = rec

    def _written(self, keys: Sequence[Any]) -> None:
        for key in keys:
            self._pending.pop(key, None)

    async def get(self, owner: str, request_id: str) -> Recent | None:
        key = self._key(owner, request_id)
        rec = self._pending.get(key)
        if rec is not None:
            return rec
        raw = await self.backend.call("decision_get", self.backend.client.get, key)
        for pause in WRITE_GRACE_S:  # another replica's writer may be a moment behind its Route
            if raw is not None:
                break
            await asyncio.sleep(pause)
            raw = await self.backend.call("decision_get", self.backend.client.get, key)
        if raw is None:
            return None
        text, model, cost, variant = json.loads(raw)
        return Recent(str(text), str(model), float(cost), str(variant))

    async def aclose(self) -> None:
        await self._writer.aclose()


def open_decisions(backend: Backend, capacity: int = RECENT,
                   max_chars: int = RECENT_CHARS) -> MemoryDecisions | RedisDecisions:
    """Recent decisions on the configured backend."""
    if isinstance(backend, RedisBackend):
        return RedisDecisions(backend)
    return MemoryDecisions(capacity, max_chars)
