"""A/B tests of router versions: sticky assignment, decision log, report.

Config section (raw in `Config.extra["ab"]`, validated here)::

    ab:
      candidate: {artifact: path/to/artifact-or-strategy-name, share: 0.1}
      sticky_by: user        # or tenant

A request goes to the candidate when the SHA-256 of its user (or tenant) id,
read as a number in [0, 1), is below `share`: the same user always sees the
same variant, and growing `share` only moves users from control to candidate.
Decisions (request_id, variant, model, cost) go to the `ab_decisions` table of
the feedback database; `ab_report` joins them with feedback scores.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain import STRATEGIES
from ..errors import ConfigError, InvalidRequest
from .feedback import connect

CONTROL = "control"
CANDIDATE = "candidate"


@dataclass(frozen=True, slots=True)
class ABConfig:
    candidate: str  # an artifact directory or a strategy name
    share: float
    sticky_by: str  # "user" or "tenant"

    @property
    def candidate_is_strategy(self) -> bool:
        return self.candidate in STRATEGIES


def parse_ab(extra: Mapping[str, Any]) -> ABConfig | None:
    """Validate `ab`; None when absent. Raises ConfigError naming each bad path."""
    node = extra.get("ab")
    if node is None:
        return None
    if not isinstance(node, dict):
        raise ConfigError(["ab: must be a mapping"])
    problems = [f"ab.{k}: unknown field (allowed: candidate, sticky_by)"
                for k in node if k not in ("candidate", "sticky_by")]
    cand = node.get("candidate")
    target, share = "", 0.0
    if not isinstance(cand, dict):
        problems.append("ab.candidate: is required (a mapping with artifact and share)")
    else:
        problems += [f"ab.candidate.{k}: unknown field (allowed: artifact, share)"
                     for k in cand if k not in ("artifact", "share")]
        art = cand.get("artifact")
        if not isinstance(art, str) or not art:
            problems.append("ab.candidate.artifact: must be a non-empty string (artifact "
                            f"directory or one of {', '.join(STRATEGIES)})")
        elif art not in STRATEGIES and not Path(art).exists():
            problems.append(f"ab.candidate.artifact: {art!r} is neither a strategy nor an "
                            "existing artifact directory")
        else:
            target = art
        raw_share = cand.get("share", 0.1)
        if isinstance(raw_share, bool) or not isinstance(raw_share, (int, float)):
            problems.append("ab.candidate.share: must be a number")
        elif not 0.0 <= float(raw_share) <= 1.0:
            problems.append(f"ab.candidate.share: must be in [0, 1], got {raw_share}")
        else:
            share = float(raw_share)
    sticky = node.get("sticky_by", "user")
    if sticky not in ("user", "tenant"):
        problems.append(f"ab.sticky_by: must be user or tenant, got {sticky!r}")
    if problems:
        raise ConfigError(problems)
    return ABConfig(candidate=target, share=share, sticky_by=str(sticky))


def bucket(key: str) -> float:
    """Deterministic position of `key` in [0, 1)."""
    h = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def assign(cfg: ABConfig, *, user: str = "", tenant: str = "", request_id: str = "") -> str:
    """CONTROL or CANDIDATE, sticky by user/tenant (falls back to the request id)."""
    key = (user if cfg.sticky_by == "user" else tenant) or request_id
    if not key:
        return CONTROL
    return CANDIDATE if bucket(f"ab:{key}") < cfg.share else CONTROL


class DecisionLog:
    """Appends A/B decisions to the feedback database off the event loop."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    def _put(self, row: tuple[str, str, str, float, float]) -> None:
        if self._conn is None:
            self._conn = connect(self.path)
        self._conn.execute("INSERT OR REPLACE INTO ab_decisions (request_id, variant, model, "
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


def _ci95(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """Mean and normal-approximation 95% interval (None when empty)."""
    n = len(values)
    if n == 0:
        return None, None, None
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = 1.96 * math.sqrt(var / n)
    return mean, mean - half, mean + half


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
        mean, lo, hi = _ci95(scores.get(variant, []))
        out[variant] = {"count": int(counts[variant]), "mean_cost_usd": float(costs[variant]),
                        "feedback_n": len(scores.get(variant, [])), "mean_score": mean,
                        "score_ci95": None if lo is None else [lo, hi]}
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
