"""The recorder: RPC events in through a bounded queue, one batching writer out.

The request path pays one `put`: a tuple appended to a deque (or, when the
queue is full, a counter bumped; a log line at most once a second). The writer
task wakes every `flush_interval_s`, swaps the queue out, and on a worker
thread turns the events into `AuditRecord`s (the server's `build` function),
feeds the metrics and encodes rows; then the store writes each batch in one
transaction (SQLite) or one COPY (PostgreSQL). `aclose()` drains everything
still queued: SIGTERM flushes, kill -9 loses at most what was queued since the
last wake-up. A failing store loses its batch (counted, logged), never a request.
`sinks` (the quality regression detector) see each batch of records on the
writer thread too; `add_record` queues a record made elsewhere (an alert) for
the store alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from routecore.observe.metrics import Metrics
from routecore.observe.record import AuditRecord, to_row
from routecore.observe.settings import AuditSettings
from routecore.observe.store import Store, open_store, redact_dsn
from routecore.observe.telemetry import Tracing

log = structlog.get_logger("routecore.observe")

# (rpc, request_id, t0, t1, status, exception or None, trace): perf_counter times.
Event = tuple[str, str, float, float, str, BaseException | None, Any]
# (event, wall-clock offset) -> its record, or one per item (RouteBatch), or None
Build = Callable[[Event, float], AuditRecord | list[AuditRecord] | None]
Sink = Callable[[list[AuditRecord]], None]
RETENTION_EVERY_S = 3600.0
PROCESS_CHUNK = 64  # events turned into rows per worker-thread call


class Recorder:
    def __init__(self, build: Build, audit: AuditSettings, metrics: Metrics | None = None,
                 probes: Sequence[Callable[[], None]] = (), tracing: Tracing | None = None,
                 sinks: Sequence[Sink] = ()) -> None:
        self.settings = audit
        self.metrics = metrics
        self.tracing = tracing
        self._build = build
        self._probes = tuple(probes)
        self._sinks = tuple(sinks)
        self._ready: deque[AuditRecord] = deque(maxlen=10_000)  # add_record(): store only
        self._store: Store | None = open_store(audit.target) if audit.enabled else None
        self._queue: deque[Event] = deque()
        self._capacity = audit.queue_size
        self.dropped = 0  # queue full, since start
        self.write_failures = 0  # records lost to store errors
        self.written = 0
        self._dropped_reported = 0
        self._last_drop_log = 0.0
        self._last_write_log = 0.0  # monotonic time of the last write-failure line; 0: none
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="routecore-recorder")
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- the request path ----------------------------------------------------------

    def put(self, rpc: str, request_id: str, t0: float, status: str,
            exc: BaseException | None, trace: Any) -> None:
        """Queue one finished RPC; never blocks, never raises."""
        queue = self._queue
        if len(queue) < self._capacity:
            queue.append((rpc, request_id, t0, time.perf_counter(), status, exc, trace))
            return
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log >= 1.0:
            self._last_drop_log = now
            log.warning("audit queue full: dropping records", dropped_total=self.dropped,
                        queue_size=self._capacity)

    def add_record(self, rec: AuditRecord) -> None:
        """Queue a finished record for the store (not the metrics or sinks); never blocks."""
        self._ready.append(rec)

    # -- the writer ------------------------------------------------------------------

    def start(self) -> None:
        self._writer_task = asyncio.ensure_future(self._writer())
        if self._store is not None and self.settings.retention_days > 0:
            self._tasks.append(asyncio.ensure_future(self._retention()))

    async def _writer(self) -> None:
        # Never cancelled: a batch swapped out of the queue is written before it stops.
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.flush_interval_s)
            try:
                await self.flush()
            except Exception:  # the writer must outlive any one bad batch
                log.exception("audit writer failed")

    async def flush(self) -> None:
        """Write everything queued so far."""
        async with self._lock:
            for probe in self._probes:
                probe()
            loop = asyncio.get_running_loop()
            while self._queue:
                events, self._queue = self._queue, deque()
                offset = time.time() - time.perf_counter()
                rows: list[tuple[Any, ...]] = []
                for i in range(0, len(events), PROCESS_CHUNK):
                    chunk = [events[j] for j in range(i, min(i + PROCESS_CHUNK, len(events)))]
                    # Small chunks: the worker thread gives the GIL back to the event loop
                    # between them instead of holding it for a whole batch.
                    rows += await loop.run_in_executor(self._pool, self._process, chunk, offset)
                    if len(rows) >= self.settings.batch_size:
                        await self._write(rows)
                        rows = []
                await self._write(rows)
            if self._ready:
                ready, self._ready = self._ready, deque(maxlen=self._ready.maxlen)
                await self._write([to_row(r) for r in ready])
            if self.metrics is not None and self.dropped != self._dropped_reported:
                self.metrics.add_dropped("queue_full", self.dropped - self._dropped_reported)
                self._dropped_reported = self.dropped

    def _process(self, events: list[Event], offset: float) -> list[tuple[Any, ...]]:
        records: list[AuditRecord] = []
        for ev in events:
            try:
                rec = self._build(ev, offset)
            except Exception:  # one malformed event must not cost the batch
                log.exception("audit record build failed", rpc=ev[0], request_id=ev[1])
                continue
            if isinstance(rec, list):
                records.extend(rec)
            elif rec is not None:
                records.append(rec)
        if self.metrics is not None:
            self.metrics.observe(records)
        if self.tracing is not None:
            self.tracing.export(records)
        for sink in self._sinks:
            try:
                sink(records)
            except Exception:  # a sink's bug must not cost the batch its audit rows
                log.exception("audit sink failed", sink=getattr(sink, "__qualname__", "?"))
        if self._store is None:
            return []
        rows = []
        for r in records:
            try:
                rows.append(to_row(r))
            except Exception:  # one unwritable record must not cost the others in its chunk
                log.exception("audit row failed", rpc=r.rpc, request_id=r.request_id)
        return rows

    async def _write(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows or self._store is None:
            return
        try:
            await self._store.write(rows)
            self.written += len(rows)
        except Exception as exc:
            self.write_failures += len(rows)
            if self.metrics is not None:
                self.metrics.add_dropped("write_failed", len(rows))
            # One line when an outage starts, then at most one a minute with the total.
            now = time.monotonic()
            if now - self._last_write_log >= 60.0:
                self._last_write_log = now
                log.error("audit write failed: records lost", records=len(rows),
                          lost_total=self.write_failures,
                          target=redact_dsn(self.settings.target), error=str(exc)[:300])
            return
        if self._last_write_log:
            log.info("audit writes recovered", lost_total=self.write_failures)
            self._last_write_log = 0.0

    async def _retention(self) -> None:
        assert self._store is not None
        while True:
            cutoff = time.time() - self.settings.retention_days * 86400.0
            try:
                deleted = await self._store.delete_before(cutoff)
                if deleted:
                    log.info("audit retention", deleted=deleted,
                             retention_days=self.settings.retention_days)
            except Exception as exc:
                log.error("audit retention failed", error=str(exc)[:300])
            await asyncio.sleep(RETENTION_EVERY_S)

    async def aclose(self) -> None:
        """Stop the background tasks, write what is still queued, close the store."""
        self._stop.set()
        if self._writer_task is not None:
            await self._writer_task
            self._writer_task = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        try:
            await self.flush()
        finally:
            if self._store is not None:
                await self._store.close()
            if self.tracing is not None:
                await asyncio.to_thread(self.tracing.close)
            self._pool.shutdown(wait=True)

