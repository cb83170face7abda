"""The caller's deadline, passed down to every provider call.

Built from grpc's `context.time_remaining()` (None: no deadline). Each attempt
runs under `min(provider timeout, remaining)`: `Deadline.attempt_timeout`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from routecore.errors import DeadlineExceeded

Clock = Callable[[], float]


class Deadline:
    """An absolute point on a monotonic clock, or no deadline at all."""

    __slots__ = ("_at", "_clock")

    def __init__(self, at: float | None, clock: Clock = time.monotonic) -> None:
        self._at = at
        self._clock = clock

    @classmethod
    def after(cls, seconds: float | None, clock: Clock = time.monotonic) -> Deadline:
        """A deadline `seconds` from now (None: unbounded)."""
        return cls(None if seconds is None else clock() + seconds, clock)

    @classmethod
    def none(cls) -> Deadline:
        return cls(None)

    @classmethod
    def from_grpc(cls, context: Any, clock: Clock = time.monotonic) -> Deadline:
        """From a grpc(.aio) servicer context; no client deadline gives an unbounded one."""
        remaining = context.time_remaining()
        return cls.after(None if remaining is None else float(remaining), clock)

    @property
    def at(self) -> float | None:
        return self._at

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None when unbounded."""
        if self._at is None:
            return None
        return max(0.0, self._at - self._clock())

    def expired(self) -> bool:
        return self._at is not None and self._clock() >= self._at

    def check(self, what: str = "request") -> None:
        """Raise DeadlineExceeded when no time is left."""
        if self.expired():
            raise DeadlineExceeded(f"deadline exceeded before {what}")

    def attempt_timeout(self, provider_timeout: float) -> float:
        """min(provider timeout, remaining); raises DeadlineExceeded when nothing remains."""
        remaining = self.remaining()
        if remaining is None:
            return provider_timeout
        if remaining <= 0.0:
            raise DeadlineExceeded("deadline exceeded before the next attempt")
        return min(provider_timeout, remaining)

    def within(self, seconds: float) -> Deadline:
        """This deadline, or `seconds` from now when that comes first (a total budget)."""
        at = self._clock() + seconds
        return self if self._at is not None and self._at <= at else Deadline(at, self._clock)

    def share(self, n: int) -> Deadline:
        """A fair 1/n share of the time left, from now: what one of `n` remaining tries
        may spend so that the others still get theirs (unbounded stays unbounded)."""
        rem = self.remaining()
        if rem is None or n <= 1:
            return self
        return Deadline(self._clock() + rem / n, self._clock)

    def __repr__(self) -> str:
        rem = self.remaining()
        return "Deadline(unbounded)" if rem is None else f"Deadline(remaining={rem:.3f}s)"
