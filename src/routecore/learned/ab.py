"""A/B tests of router versions: the decision log and the report.

The `ab` config section and the sticky assignment of a request to a variant
live in routecore.routing.ab. Here, decisions (request_id, variant, model,
cost) go to the `ab_decisions` table of the feedback database; `ab_report`
joins them with feedback scores. On the Redis backend every replica adds to
one fleet-wide set of totals per experiment instead (state/ab.py), read by
`routecore ab-report --config`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from routecore.config import Config
from routecore.errors import InvalidRequest
from routecore.learned.feedback import connect
from routecore.routing.ab import CANDIDATE, CONTROL
from routecore.state.ab import ci95


class DecisionLog:
    """Appends A/B decisions to the feedback database off the event loop."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    def _put(self, row: tuple[str, str, str, float, float]) -> None:
        if self._conn is None:
            self._conn = connect(self.path)
        self._conn.execute("INSERT OR IGNORE INTO ab_decisions (request_id, variant, model, "
                           "cost_usd, created_at) VALUES (?, ?, ?, ?, ?)", row)

    async def record(self, request_id: str, variant: str, model: str, cost_usd: float) -> None:
        if variant not in (CONTROL, CANDIDATE):
            raise InvalidRequest(f"ab: unknown variant {variant!r}")
        async with self._lock:
            await asyncio.to_thread(self._put, (request_id, variant, model, float(cost_usd),
                                                time.time()))

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                await asyncio.to_thread(conn.close)


def experiment_id(config: Config) -> str:
    """Names one A/B experiment (router version and `ab` section): its fleet totals' key."""
    doc = json.dumps([config.router_version, config.extra.get("ab")], sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def ab_report(db: str | Path) -> dict[str, dict[str, Any]]:
    """Per variant: decisions, mean cost, mean feedback score with a 95% CI."""
    if not Path(db).is_file():
        raise InvalidRequest(f"{db}: no such database")
    conn = connect(db)
    try:
        rows = conn.execute("SELECT d.variant, d.cost_usd, f.score FROM ab_decisions d "
                            "LEFT JOIN feedback f ON f.request_id = d.request_id").fetchall()
        counts = dict(conn.execute("SELECT variant, COUNT(*) FROM ab_decisions GROUP BY variant")
                      .fetchall())
        costs = dict(conn.execute("SELECT variant, AVG(cost_usd) FROM ab_decisions "
                                  "GROUP BY variant").fetchall())
    finally:
        conn.close()
    scores: dict[str, list[float]] = {}
    for variant, _cost, score in rows:
        if score is not None:
            scores.setdefault(variant, []).append(float(score))
    out: dict[str, dict[str, Any]] = {}
    for variant in sorted(counts):
        vals = scores.get(variant, [])
        mean, interval = ci95(len(vals), sum(vals), sum(v * v for v in vals))
        out[variant] = {"count": int(counts[variant]), "mean_cost_usd": float(costs[variant]),
                        "feedback_n": len(vals), "mean_score": mean, "score_ci95": interval}
    return out


def format_report(report: dict[str, dict[str, Any]]) -> str:
    """The CLI printout of `ab_report`."""
    lines = [f"{'variant':10s} {'count':>7s} {'mean cost':>12s} {'n fb':>6s} "
             f"{'mean score':>10s}  95% CI"]
    for variant, r in report.items():
        ms = "-" if r["mean_score"] is None else f"{r['mean_score']:.3f}"
        ci = "-" if r["score_ci95"] is None else \
            f"[{r['score_ci95'][0]:.3f}, {r['score_ci95'][1]:.3f}]"
        lines.append(f"{variant:10s} {r['count']:7d} {r['mean_cost_usd']:12.6f} "
                     f"{r['feedback_n']:6d} {ms:>10s}  {ci}")
    return "\n".join(lines)
