"""Redis writes off the request path: a bounded queue, one writer task, pipelines.

`submit` never waits: it queues a record's commands (e.g. `("set", (key, value),
{"nx": True})`) or, when the queue is full, drops them and counts it. One task
drains the queue in batches, each batch one pipeline (one round trip); a failed
batch is counted as dropped (the backend has logged the outage). `aclose`
flushes what is queued and stops the task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from routecore.errors import StateUnavailable
from routecore.state.backend import RedisBackend

Op = tuple[str, tuple[Any, ...], dict[str, Any]]  # pipeline method, args, kwargs
QUEUE = 10_000  # records waiting before new ones are dropped
BATCH = 500
# After the first record of a batch, wait this long for more before writing. At low
# concurrency every Route would otherwise cost its own pipeline round trip on the
# event loop (the Redis client's CPU per call, not the network, is what it costs).
LINGER_S = 0.005


class WriteBehind:
    """One writer task per purpose; `after(records)` runs once a batch is done (ok or not)."""

    def __init__(self, backend: RedisBackend, what: str, *, queue_size: int = QUEUE,
                 after: Callable[[Sequence[Any]], None] | None = None) -> None:
        self.backend = backend
        self.what = what
        self.dropped = 0  # records not written: the queue was full, or Redis was down
        self._after = after
        self._queue: asyncio.Queue[tuple[Any, Sequence[Op]] | None] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None

    def submit(self, record: Any, ops: Sequence[Op]) -> bool:
        """Queue `ops` (tagged `record` for `after`); False when dropped."""
        try:
            self._queue.put_nowait((record, ops))
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return True

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            if item is not None and self._queue.qsize() < BATCH:
                await asyncio.sleep(LINGER_S)
            batch: list[tuple[Any, Sequence[Op]]] = []
            while item is not None:
                batch.append(item)
                if len(batch) >= BATCH or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            if batch:
                await self._flush(batch)
            if item is None:
                return

    async def _flush(self, batch: list[tuple[Any, Sequence[Op]]]) -> None:
        pipe = self.backend.client.pipeline(transaction=False)
        for _, ops in batch:
            for name, args, kw in ops:
                getattr(pipe, name)(*args, **kw)
        try:
            await self.backend.call(self.what, pipe.execute)
        except StateUnavailable:  # logged and counted by the backend
            self.dropped += len(batch)
        finally:
            if self._after is not None:
                self._after([record for record, _ in batch])

    async def aclose(self) -> None:
        """Write everything queued, then stop the writer."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
