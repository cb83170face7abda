"""Deployment weights as real traffic shares: smooth weighted round robin.

The next request goes to one of a model's usable deployments (weight > 0,
breaker not open, not cooling down after a 429) picked by nginx's smooth
weighted round robin: over any run of N picks each gets its share of N to
within one request, interleaved (0.9/0.1 gives a b-request every ten, not ten
in a row). Load still wins over weight: a deployment is left out of the pick
while it is overloaded for its weight (more requests in flight per unit of
weight than the least loaded one would have after one more) or degraded
(latency average well above the fastest one's), so a slow or stuck deployment
gets less than its share rather than a queue.
"""

from __future__ import annotations

from collections.abc import Sequence

# A deployment whose latency average is over 3x the fastest one's (and 50 ms more:
# small absolute differences are noise) is degraded.
DEGRADED_RATIO = 3.0
DEGRADED_SLACK_MS = 50.0


def balanced(loads: Sequence[tuple[int, float, float]], ids: Sequence[int]) -> list[int]:
    """The `ids` whose (in_flight, weight > 0, ewma_ms) make them fit to take the next
    request: in_flight / weight <= min over all of (in_flight + 1) / weight, and not
    degraded. Never empty (the least loaded one always fits)."""
    bar = min((n + 1) / w for n, w, _ in loads)
    fastest = min(ms for _, _, ms in loads)
    slow = max(fastest * DEGRADED_RATIO, fastest + DEGRADED_SLACK_MS)
    fit = [i for i, (n, w, ms) in zip(ids, loads, strict=True) if n / w <= bar and ms <= slow]
    if fit:
        return fit
    return [min(zip(ids, loads, strict=True), key=lambda x: x[1][0] / x[1][1])[0]]


class SmoothWeighted:
    """Per deployment, its running credit (process-local, no locking: the event loop
    runs one pick at a time)."""

    def __init__(self) -> None:
        self._credit: dict[str, float] = {}

    def pick(self, keys: Sequence[str], weights: Sequence[float]) -> int:
        """Index (into `keys`) of the next deployment; `weights` all > 0."""
        total = 0.0
        best = -1
        for i, key in enumerate(keys):
            w = weights[i]
            total += w
            c = self._credit.get(key, 0.0) + w
            self._credit[key] = c
            if best < 0 or c > self._credit[keys[best]]:
                best = i
        self._credit[keys[best]] -= total
        return best
