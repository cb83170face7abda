"""Identical misses in flight at once: the first asks the model, the others wait for its answer.

A burst of the same request (a popular question, a retried client) would
otherwise pay the model once per copy before the first answer is stored. The
first Complete whose lookup misses leads its key; a Complete with the same key
meanwhile follows: it waits for the leader to land, at most `FOLLOW_S` or half
its own time left, and looks up again. A follower that finds nothing (the
leader failed, or its answer was truncated) calls the model itself: it never
inherits the leader's error.

A leader lands when its answer is offered to the cache (stored or not), when
its task ends (an RPC's task ends with its error, so a failure wakes the
followers at once), or when its task leads another key (a long-lived task
that moved on). Flights are per process: replicas share answers once stored
(Redis), not calls in flight. Streams neither lead nor follow (a first chunk
must not wait for a whole answer).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

FOLLOW_S = 30.0  # the longest a follower waits for a leader

Key = tuple[str, str]  # (tenant, exact key)


class Flights:
    """The keys being answered now, each with the event its followers wait on."""

    def __init__(self) -> None:
        self._by: dict[Key, asyncio.Event] = {}
        self._led: dict[asyncio.Task[Any], Key] = {}  # each leading task's key

    def __len__(self) -> int:
        return len(self._by)

    def lead(self, key: Key) -> asyncio.Event | None:
        """None when the calling task now leads `key`; else the leader's event to follow."""
        event = self._by.get(key)
        task = asyncio.current_task()
        if event is not None and (task is None or self._led.get(task) != key):
            return event
        if task is not None:
            previous = self._led.get(task)
            if previous is not None and previous != key:
                self.land(previous)  # this task moved on: its last call has ended
            if previous is None:
                task.add_done_callback(self._task_done)
            self._led[task] = key
        self._by.setdefault(key, asyncio.Event())
        return None

    async def follow(self, event: asyncio.Event, remaining_s: float | None) -> None:
        """Wait for the leader to land, at most FOLLOW_S or half the time left."""
        wait = FOLLOW_S if remaining_s is None else min(FOLLOW_S, max(0.0, remaining_s) / 2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), wait)

    def land(self, key: Key) -> None:
        """The leader of `key` is done: wake its followers."""
        event = self._by.pop(key, None)
        if event is not None:
            event.set()

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        key = self._led.pop(task, None)
        if key is not None:
            self.land(key)

