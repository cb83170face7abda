"""Stored outcome feedback: SQLite (WAL) behind async methods, exportable for retraining.

`FeedbackStore(path)` keeps rows (feedback_id, request_id, prompt, model,
score in [0, 1], comment, source, created_at). Every database call runs on one
dedicated worker thread, so the event loop never blocks and the sqlite
connection is only ever touched by that thread. `export_jsonl` writes the
training schema (one model scored per record), which `routecore train
--feedback DB` reads.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from routecore.config import _Reader
from routecore.errors import ConfigError, InvalidRequest

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    feedback_id TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL,
    prompt      TEXT NOT NULL,
    model       TEXT NOT NULL,
    score       REAL NOT NULL,
    comment     TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL DEFAULT '',
    cost_usd    REAL,
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback(request_id);
CREATE TABLE IF NOT EXISTS ab_decisions (
    request_id TEXT PRIMARY KEY,
    variant    TEXT NOT NULL,
    model      TEXT NOT NULL,
    cost_usd   REAL NOT NULL,
    created_at REAL NOT NULL
);
"""

COLUMNS = ("feedback_id", "request_id", "prompt", "model", "score", "comment", "source",
           "cost_usd", "created_at")


def default_path(env: Mapping[str, str] | None = None) -> Path:
    """$XDG_DATA_HOME/routecore/feedback.db, else ~/.local/share/routecore/feedback.db: one
    per user, never a file that every server started in some directory shares by accident."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local/share")
    return Path(base) / "routecore" / "feedback.db"


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating it and its directory) the database in WAL mode with the schema in place."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


def feedback_path(extra: Mapping[str, Any]) -> str | None:
    """Validate the `feedback` config section ({path: str}); None when absent."""
    node = extra.get("feedback")
    if node is None:
        return None
    r = _Reader()
    n = r.mapping(node, "feedback")
    r.unknown(n, "feedback", {"path"})
    path = r.get(n, "path", "feedback", str)
    if path == "":
        r.fail("feedback.path", "must be a non-empty string")
    if r.problems:
        raise ConfigError(r.problems)
    return str(path)


class FeedbackStore:
    """Async facade over one SQLite database (one worker thread owns the connection)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="routecore-feedback")
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.path)
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._db()))

    async def add(self, *, request_id: str, prompt: str, model: str, score: float,
                  comment: str = "", source: str = "", cost_usd: float | None = None) -> str:
        """Store one outcome; returns its feedback_id. Raises InvalidRequest on bad fields."""
        if not isinstance(score, (int, float)) or isinstance(score, bool) or \
                not 0.0 <= float(score) <= 1.0 or math.isnan(float(score)):
            raise InvalidRequest(f"feedback.score: must be in [0, 1], got {score!r}")
        if not prompt:
            raise InvalidRequest("feedback.prompt: must be non-empty")
        if not model:
            raise InvalidRequest("feedback.model: must be non-empty")
        if cost_usd is not None and cost_usd < 0:
            raise InvalidRequest(f"feedback.cost_usd: must be >= 0, got {cost_usd}")
        fid = uuid.uuid4().hex
        row = (fid, request_id, prompt, model, float(score), comment, source, cost_usd,
               time.time())

        def put(db: sqlite3.Connection) -> None:
            db.execute(f"INSERT INTO feedback ({', '.join(COLUMNS)}) VALUES "
                       f"({', '.join('?' * len(COLUMNS))})", row)

        await self._run(put)
        return fid

    async def rows(self) -> list[dict[str, Any]]:
        """Every stored row, oldest first."""
        def get(db: sqlite3.Connection) -> list[dict[str, Any]]:
            cur = db.execute(f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY created_at")
            return [dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()]

        return await self._run(get)

    async def export_jsonl(self, path: str | Path) -> int:
        """Write rows as training records; returns how many."""
        rows = await self.rows()
        return await asyncio.to_thread(_write_export, path, rows)

    async def close(self) -> None:
        def shut(db: sqlite3.Connection) -> None:
            db.close()

        if self._conn is not None:
            await self._run(shut)
            self._conn = None
        self._pool.shutdown(wait=True)


def to_records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Feedback rows in the training schema (one model per record; cost 0 when unknown)."""
    return [{"id": f"feedback-{r['feedback_id']}", "prompt": r["prompt"],
             "source": r["source"] or "feedback", "scores": {r["model"]: r["score"]},
             "costs": {r["model"]: r["cost_usd"] if r["cost_usd"] is not None else 0.0}}
            for r in rows]


def _write_export(path: str | Path, rows: list[dict[str, Any]]) -> int:
    recs = to_records(rows)
    with Path(path).open("w", encoding="utf-8") as fh:
        for rec in recs:
            fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
    return len(recs)


def read_rows_sync(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a feedback database, for the CLI (no event loop needed)."""
    if not Path(path).is_file():
        raise InvalidRequest(f"{path}: no such feedback database")
    conn = connect(path)
    try:
        cur = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY created_at")
        return [dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.close()
