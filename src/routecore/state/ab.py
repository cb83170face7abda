"""A/B totals for a fleet: per variant, the decisions, their cost and the feedback scores.

Each replica adds what it sees to one hash per experiment in Redis
(`rc:{%}:ab:<experiment>`: `<variant>:n`, `:cost`, `:fn`, `:fs`, `:fs2`), written
behind (state/writer.py) so Route never waits on it; a feedback counts for the
variant of the decision it names. `report` reads the fleet's totals: count,
mean cost, and the mean feedback score with a 95% interval (normal
approximation, from the sums). The memory backend keeps its A/B log in the
feedback database instead (learned/ab.py).
"""

from __future__ import annotations

import math
from typing import Any

from routecore.state.backend import RedisBackend
from routecore.state.writer import WriteBehind

KEEP_S = 90 * 86_400  # an experiment's totals outlive its last decision by this much


def ci95(n: int, total: float, total_sq: float) -> tuple[float | None, list[float] | None]:
    """Mean and normal-approximation 95% interval from a count and sums (None when n = 0)."""
    if n == 0:
        return None, None
    mean = total / n
    if n == 1:
        return mean, [mean, mean]
    var = max(0.0, (total_sq - n * mean * mean) / (n - 1))
    half = 1.96 * math.sqrt(var / n)
    return mean, [mean - half, mean + half]


class RedisABTotals:
    """The fleet's A/B totals in Redis."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self._writer = WriteBehind(backend, "ab_put")

    def _key(self, experiment: str) -> str:
        return self.backend.key("", "ab", experiment)

    def decided(self, experiment: str, variant: str, cost_usd: float) -> None:
        """Count one decision of `variant` and its cost (without waiting)."""
        k = self._key(experiment)
        self._writer.submit(None, [("hincrby", (k, f"{variant}:n", 1), {}),
                                   ("hincrbyfloat", (k, f"{variant}:cost", cost_usd), {}),
                                   ("expire", (k, KEEP_S), {})])

    def scored(self, experiment: str, variant: str, score: float) -> None:
        """Count one feedback score for `variant` (without waiting)."""
        k = self._key(experiment)
        self._writer.submit(None, [("hincrby", (k, f"{variant}:fn", 1), {}),
                                   ("hincrbyfloat", (k, f"{variant}:fs", score), {}),
                                   ("hincrbyfloat", (k, f"{variant}:fs2", score * score), {}),
                                   ("expire", (k, KEEP_S), {})])

    async def report(self, experiment: str) -> dict[str, dict[str, Any]]:
        """Per variant: count, mean cost, feedback count, mean score and its 95% interval."""
        raw = await self.backend.call("ab_report", self.backend.client.hgetall,
                                      self._key(experiment))
        cells: dict[str, dict[str, float]] = {}
        for k, v in raw.items():
            variant, _, field = (k.decode() if isinstance(k, bytes) else str(k)).rpartition(":")
            cells.setdefault(variant, {})[field] = float(v)
        out: dict[str, dict[str, Any]] = {}
        for variant in sorted(cells):
            c = cells[variant]
            n, fn = int(c.get("n", 0)), int(c.get("fn", 0))
            mean, interval = ci95(fn, c.get("fs", 0.0), c.get("fs2", 0.0))
            out[variant] = {"count": n, "mean_cost_usd": c.get("cost", 0.0) / n if n else 0.0,
                            "feedback_n": fn, "mean_score": mean, "score_ci95": interval}
        return out

    async def aclose(self) -> None:
        await self._writer.aclose()
