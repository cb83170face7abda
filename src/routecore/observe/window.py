"""A sliding time window of sums, in one-second buckets: memory bounded by its
length in seconds, whatever the request rate."""

from __future__ import annotations

from collections import deque


class Window:
    """Sums of (a, b) pairs observed in the last `seconds`; `ratio()` = sum a / sum b."""

    __slots__ = ("_buckets", "_seconds", "a", "b", "n")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._buckets: deque[list[float]] = deque()  # [second, a, b, n]
        self.a = self.b = 0.0
        self.n = 0

    def add(self, now: float, a: float, b: float = 1.0) -> None:
        sec = float(int(now))
        buckets = self._buckets
        if buckets and buckets[-1][0] == sec:
            last = buckets[-1]
            last[1] += a
            last[2] += b
            last[3] += 1
        else:
            buckets.append([sec, a, b, 1])
        self.a += a
        self.b += b
        self.n += 1

    def expire(self, now: float) -> None:
        buckets = self._buckets
        while buckets and buckets[0][0] <= now - self._seconds:
            _, a, b, n = buckets.popleft()
            self.a -= a
            self.b -= b
            self.n -= int(n)
        if not buckets:  # no float residue once empty
            self.a = self.b = 0.0
            self.n = 0

    def ratio(self) -> float | None:
        """sum a / sum b over the window; None when nothing was observed."""
        return self.a / self.b if self.n and self.b > 0 else None
