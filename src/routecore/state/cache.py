"""Response cache storage: answers by key (memory or Redis, with a TTL) and the
log of semantic entries that feeds every replica's vector index.

    store = open_answers(backend)
    store.put("acme", key, answer, ttl_s=3600)         # never waits (Redis: written behind)
    await store.get("acme", key)                        # CachedAnswer | None
    store.publish(entry)                                # a semantic entry, for every replica
    await store.updates()                               # entries other replicas published since

An answer belongs to its tenant: it is stored under (tenant, key) and looked up
the same way, so another tenant's lookup finds nothing even with the same key.
`MemoryAnswers` keeps answers in this process, bounded by count and characters
(oldest first out). `RedisAnswers` writes `SET rc:{tenant}:cache:<key> value EX
ttl` through one write-behind task, so every replica shares one exact cache
(queued answers are visible on the replica that queued them at once), and
appends semantic entries to one stream (`rc:{%}:cache:semlog`, capped at
`LOG_MAX` entries, expiring `ttl` after its last append) that each replica
reads, at most every `SYNC_S`, into its own index (state/vectors.py).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from routecore.errors import StateUnavailable
from routecore.state.backend import Backend, MemoryBackend, RedisBackend
from routecore.state.writer import QUEUE, WriteBehind

CAPACITY = 100_000  # memory: answers kept
MAX_CHARS = 256_000_000  # memory: answer characters kept (prompts are hashed, not kept)
LOG_MAX = 100_000  # Redis: semantic entries the stream keeps (approximately)
SYNC_S = 0.1  # Redis: a replica reads the semantic log at most this often
READ_COUNT = 1_000  # Redis: entries read per sync (a new replica catches up over a few)


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """One stored answer and what it cost when it was made."""

    text: str
    model: str
    provider: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    stored_at: float  # backend clock (unix seconds)


@dataclass(frozen=True, slots=True)
class SemanticEntry:
    """A prompt's vector and guard pointing at an answer's key (state/vectors.py indexes it)."""

    tenant: str
    key: str  # the answer's key in the store
    context: str  # hash of everything but the prompt's text: a hit needs the same
    vector: npt.NDArray[np.float32]
    guard: tuple[tuple[str, ...], ...]  # calling/cache_guard.py: what must match
    stored_at: float
    origin: str = ""  # the replica that published it (it skips its own in `updates`)


class AnswerStore(Protocol):
    def put(self, tenant: str, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        """Store (or replace) an answer, without waiting."""
        ...

    async def get(self, tenant: str, key: str) -> CachedAnswer | None:
        """`tenant`'s answer under `key`, if stored and not expired."""
        ...

    def publish(self, entry: SemanticEntry, ttl_s: float) -> None:
        """Offer a semantic entry to the other replicas, without waiting."""
        ...

    async def updates(self) -> list[SemanticEntry]:
        """Entries other replicas published since the last call (memory: none)."""
        ...

    async def aclose(self) -> None:
        """Write what is pending."""
        ...


class MemoryAnswers:
    """Answers of this process, bounded by count and characters, oldest out first."""

    def __init__(self, backend: MemoryBackend, capacity: int = CAPACITY,
                 max_chars: int = MAX_CHARS) -> None:
        self.clock = backend.clock
        self._items: OrderedDict[tuple[str, str], tuple[CachedAnswer, float]] = OrderedDict()
        self._capacity = capacity
        self._max_chars = max_chars
        self._chars = 0

    def put(self, tenant: str, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        k = (tenant, key)
        old = self._items.pop(k, None)
        if old is not None:
            self._chars -= len(old[0].text)
        self._items[k] = (answer, self.clock() + ttl_s)
        self._chars += len(answer.text)
        while len(self._items) > self._capacity or (
                self._chars > self._max_chars and len(self._items) > 1):
            self._chars -= len(self._items.popitem(last=False)[1][0].text)

    async def get(self, tenant: str, key: str) -> CachedAnswer | None:
        item = self._items.get((tenant, key))
        if item is None:
            return None
        if item[1] <= self.clock():
            del self._items[(tenant, key)]
            self._chars -= len(item[0].text)
            return None
        return item[0]

    def publish(self, entry: SemanticEntry, ttl_s: float) -> None:
        return None  # one process: its own index already holds the entry

    async def updates(self) -> list[SemanticEntry]:
        return []

    async def aclose(self) -> None:
        return None


class RedisAnswers:
    """Answers in Redis for every replica (written behind), and the shared semantic log."""

    def __init__(self, backend: RedisBackend, queue_size: int = QUEUE) -> None:
        self.backend = backend
        self.origin = uuid.uuid4().hex[:12]
        self._log = backend.key("", "cache", "semlog")
        self._cursor = "0-0"  # a new replica reads what the log still holds
        self._synced = 0.0
        self._pending: dict[str, CachedAnswer] = {}  # queued, not yet in Redis
        self._writer = WriteBehind(backend, "cache_put", queue_size=queue_size,
                                   after=self._written)

    @property
    def dropped(self) -> int:
        """Answers or entries not stored: the queue was full, or Redis was down."""
        return self._writer.dropped

    def _key(self, tenant: str, key: str) -> str:
        return self.backend.key(tenant, "cache", key)

    def put(self, tenant: str, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        rkey = self._key(tenant, key)
        value = json.dumps([answer.text, answer.model, answer.provider, answer.finish_reason,
                            answer.input_tokens, answer.output_tokens, answer.cost_usd,
                            answer.stored_at])
        ex = max(1, int(ttl_s + 0.999))
        if self._writer.submit(("answer", rkey), [("set", (rkey, value), {"ex": ex})]):
            self._pending[rkey] = answer

    def _written(self, records: Sequence[Any]) -> None:
        for kind, rkey in records:
            if kind == "answer":
                self._pending.pop(rkey, None)

    async def get(self, tenant: str, key: str) -> CachedAnswer | None:
        rkey = self._key(tenant, key)
        answer = self._pending.get(rkey)
        if answer is not None:
            return answer
        raw = await self.backend.call("cache_get", self.backend.client.get, rkey)
        if raw is None:
            return None
        text, model, provider, finish, n_in, n_out, cost, at = json.loads(raw)
        return CachedAnswer(str(text), str(model), str(provider), str(finish), int(n_in),
                            int(n_out), float(cost), float(at))

    def publish(self, entry: SemanticEntry, ttl_s: float) -> None:
        fields = {"t": entry.tenant, "k": entry.key, "c": entry.context,
                  "v": np.ascontiguousarray(entry.vector, dtype="<f4").tobytes(),
                  "g": json.dumps(entry.guard), "s": repr(entry.stored_at), "o": self.origin}
        ex = max(1, int(ttl_s + 0.999))
        self._writer.submit(("entry", ""), [
            ("xadd", (self._log, fields), {"maxlen": LOG_MAX, "approximate": True}),
            ("expire", (self._log, ex), {})])

    async def updates(self) -> list[SemanticEntry]:
        now = time.monotonic()
        if now - self._synced < SYNC_S:
            return []
        self._synced = now
        try:
            got = await self.backend.call("cache_log", self.backend.client.xread,
                                          {self._log: self._cursor}, count=READ_COUNT)
        except StateUnavailable:  # logged by the backend; the local index still serves
            return []
        out: list[SemanticEntry] = []
        for _stream, items in got or ():
            for entry_id, f in items:
                self._cursor = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                entry = _entry(f)
                if entry is not None and entry.origin != self.origin:
                    out.append(entry)
        return out

    async def aclose(self) -> None:
        await self._writer.aclose()


def _entry(f: dict[Any, Any]) -> SemanticEntry | None:
    """A log record as an entry; a malformed one (another version's layout) is skipped."""
    def s(name: str) -> str:
        v = f.get(name.encode(), f.get(name, b""))
        return v.decode() if isinstance(v, bytes) else str(v)
    try:
        raw = f.get(b"v", f.get("v", b""))
        vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        guard = tuple(tuple(str(x) for x in part) for part in json.loads(s("g")))
        return SemanticEntry(s("t"), s("k"), s("c"), vector, guard, float(s("s")), s("o"))
    except (ValueError, TypeError):
        return None


def open_answers(backend: Backend) -> MemoryAnswers | RedisAnswers:
    """The answer store on the configured backend."""
    if isinstance(backend, RedisBackend):
        return RedisAnswers(backend)
    return MemoryAnswers(backend)
