"""Where audit records live: SQLite (WAL, the embedded default) or PostgreSQL (asyncpg).

Both have the same async interface for the recorder (`write`, `delete_before`,
`close`) and the same queries for the CLI (`documents`, `summary`). One table,
`routecore_audit`. SQLite calls run on one dedicated thread that owns the
connection, so the event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog

from routecore.errors import InvalidRequest
from routecore.observe.record import BLOBS, COLUMNS, INTEGERS, JSONS, REALS, to_document

T = TypeVar("T")
TABLE = "routecore_audit"
# Quoted: `user` is a reserved word in PostgreSQL.
QCOLUMNS = ", ".join(f'"{c}"' for c in COLUMNS)
SUMMARY_KEYS = ("day", "tenant", "model", "requests", "errors", "feedback", "spend_usd",
                "estimated_usd", "input_tokens", "output_tokens", "shadow_evals",
                "shadow_spend_usd", "alerts")
_FLOATS = frozenset({"spend_usd", "estimated_usd", "shadow_spend_usd"})
ALERT_KEYS = ("ts", "model", "model_version", "category", "router_version", "error", "features")


def _sql_type(col: str, pg: bool) -> str:
    if col in INTEGERS:
        return "BIGINT NOT NULL DEFAULT 0" if pg else "INTEGER NOT NULL DEFAULT 0"
    if col in REALS:
        return "DOUBLE PRECISION NOT NULL" if pg else "REAL NOT NULL"
    if col in JSONS:
        return "JSONB NOT NULL" if pg else "TEXT NOT NULL"
    if col in BLOBS:
        return "BYTEA NOT NULL" if pg else "BLOB NOT NULL"
    return "TEXT NOT NULL DEFAULT ''"


def schema(pg: bool) -> list[str]:
    cols = ",\n  ".join(f'"{c}" {_sql_type(c, pg)}' for c in COLUMNS)
    return [f"CREATE TABLE IF NOT EXISTS {TABLE} (\n  {cols}\n)",
            # One index: every reader (export, summary, retention) filters on time.
            f"CREATE INDEX IF NOT EXISTS {TABLE}_ts ON {TABLE} (ts)"]


def set_aside(found: Sequence[str]) -> list[str]:
    """Statements that move a table of another layout out of the way ([] when it matches).

    Records of an older build are laid out differently (columns added, candidates
    packed), so writing into that table fails every row. The old table is renamed,
    kept for export by hand, and a fresh one is made: no record is lost and no
    write fails after an upgrade.
    """
    if not found or list(found) == list(COLUMNS):
        return []
    old = f"{TABLE}_before_{int(time.time())}"
    structlog.get_logger().warning("audit_table_set_aside", table=TABLE, renamed_to=old,
                                   reason="written by another routecore version")
    return [f"ALTER TABLE {TABLE} RENAME TO {old}", f"DROP INDEX IF EXISTS {TABLE}_ts"]


def is_postgres(target: str) -> bool:
    return target.startswith(("postgres://", "postgresql://"))


class Store(Protocol):
    async def write(self, rows: Sequence[tuple[Any, ...]]) -> None: ...
    async def delete_before(self, ts: float) -> int: ...
    async def close(self) -> None: ...


def connect_sqlite(path: str | Path, create: bool = True) -> sqlite3.Connection:
    p = Path(path)
    if not create and not p.is_file():
        raise InvalidRequest(f"{path}: no such audit database")
    if create:
        p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(p), check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")  # several workers share one file
    if create:
        found = [r[1] for r in conn.execute(f"PRAGMA table_info({TABLE})")]
        for stmt in set_aside(found):
            conn.execute(stmt)
    for stmt in schema(pg=False):
        conn.execute(stmt)
    return conn


class SqliteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="routecore-audit")
        self._conn: sqlite3.Connection | None = None
        self._insert = (f"INSERT INTO {TABLE} ({QCOLUMNS}) "
                        f"VALUES ({', '.join('?' * len(COLUMNS))})")

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect_sqlite(self.path)
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(self._db()))

    async def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        def put(db: sqlite3.Connection) -> None:
            # One transaction per batch (autocommit mode would commit every row).
            db.execute("BEGIN")
            try:
                db.executemany(self._insert, rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        await self._run(put)

    async def delete_before(self, ts: float) -> int:
        def delete(db: sqlite3.Connection) -> int:
            return db.execute(f"DELETE FROM {TABLE} WHERE ts < ?", (ts,)).rowcount
        return await self._run(delete)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._pool, conn.close)
        self._pool.shutdown(wait=True)


class PostgresStore:
    """Batches go in with COPY (binary) over one pooled connection."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: Any = None

    async def _get(self) -> Any:
        if self._pool is None:
            import asyncpg

            # Bounded waits: with the database down, a batch fails in seconds (and is
            # counted), and shutdown is not held up.
            pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2, timeout=5,
                                             command_timeout=30)
            async with pool.acquire() as conn:
                found = [r["column_name"] for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
                    "AND table_schema = current_schema() ORDER BY ordinal_position", TABLE)]
                for stmt in set_aside(found):
                    await conn.execute(stmt)
                for stmt in schema(pg=True):
                    await conn.execute(stmt)
            self._pool = pool
        return self._pool

    async def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        pool = await self._get()
        async with pool.acquire() as conn:
            await conn.copy_records_to_table(TABLE, records=rows, columns=COLUMNS)

    async def delete_before(self, ts: float) -> int:
        pool = await self._get()
        status: str = await pool.execute(f"DELETE FROM {TABLE} WHERE ts < $1", ts)
        return int(status.rsplit(" ", 1)[-1])

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


def redact_dsn(target: str) -> str:
    """A DSN without its password, for logs; a path as it is."""
    if is_postgres(target) and "@" in target:
        scheme, rest = target.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return target


def open_store(target: str) -> Store:
    return PostgresStore(target) if is_postgres(target) else SqliteStore(target)


# -- reading (the CLI) ---------------------------------------------------------------


def _where(since: float | None, tenant: str | None, pg: bool,
           rpc: str | None = None) -> tuple[str, list[Any]]:
    conds: list[str] = []
    args: list[Any] = []
    for cond, value in (("ts >= {}", since), ("tenant = {}", tenant), ("rpc = {}", rpc)):
        if value is not None:
            args.append(value)
            conds.append(cond.format(f"${len(args)}" if pg else "?"))
    return (" WHERE " + " AND ".join(conds)) if conds else "", args


def _summary_sql(pg: bool, where: str) -> str:
    day = ("to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')" if pg
           else "date(ts, 'unixepoch')")
    # Shadow evaluations (observe/shadow.py) are counted and priced apart: their spend is
    # never the callers'; their model column is the shadow model.
    live = "rpc NOT IN ('Shadow', 'Alert')"
    return (f"SELECT {day} AS day, tenant, "
            "CASE WHEN served_model <> '' THEN served_model ELSE model END AS m, "
            "SUM(CASE WHEN rpc NOT IN ('Feedback', 'Shadow', 'Alert') THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN status <> 'OK' AND {live} THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN rpc = 'Feedback' THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN {live} THEN cost_usd ELSE 0 END), SUM(estimated_cost_usd), "
            f"SUM(CASE WHEN {live} THEN input_tokens ELSE 0 END), "
            f"SUM(CASE WHEN {live} THEN output_tokens ELSE 0 END), "
            "SUM(CASE WHEN rpc = 'Shadow' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN rpc = 'Shadow' THEN cost_usd ELSE 0 END), "
            "SUM(CASE WHEN rpc = 'Alert' THEN 1 ELSE 0 END) "
            f"FROM {TABLE}{where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")


async def rows(target: str, columns: Sequence[str] = COLUMNS, since: float | None = None,
               tenant: str | None = None, rpc: str | None = None,
               ) -> AsyncIterator[tuple[Any, ...]]:
    """Stored rows (only `columns`, in that order), oldest first."""
    pg = is_postgres(target)
    where, args = _where(since, tenant, pg, rpc)
    sql = f"SELECT {', '.join(f'{chr(34)}{c}{chr(34)}' for c in columns)} FROM {TABLE}{where} " \
          "ORDER BY ts"
    if pg:
        import asyncpg

        conn = await asyncpg.connect(target)
        try:
            async with conn.transaction():
                async for rec in conn.cursor(sql, *args, prefetch=1000):
                    yield tuple(rec.values())
        finally:
            await conn.close()
        return
    db = connect_sqlite(target, create=False)
    try:
        cur = db.execute(sql, args)
        while batch := cur.fetchmany(1000):
            for row in batch:
                yield row
    finally:
        db.close()


async def documents(target: str, since: float | None = None,
                    tenant: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """Stored records, oldest first, as JSON-ready documents."""
    async for row in rows(target, COLUMNS, since, tenant):
        yield to_document(tuple(row))


async def summary(target: str, since: float | None = None,
                  tenant: str | None = None) -> list[dict[str, Any]]:
    """Requests, errors, feedback, spend and tokens per (day, tenant, model)."""
    pg = is_postgres(target)
    where, args = _where(since, tenant, pg)
    sql = _summary_sql(pg, where)
    if pg:
        import asyncpg

        conn = await asyncpg.connect(target)
        try:
            rows = [tuple(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()
    else:
        db = connect_sqlite(target, create=False)
        try:
            rows = [tuple(r) for r in db.execute(sql, args)]
        finally:
            db.close()
    # PostgreSQL sums are numeric (Decimal): plain ints and floats for JSON.
    return [{k: (v if k in ("day", "tenant", "model") else
                 float(v or 0) if k in _FLOATS else int(v or 0))
             for k, v in zip(SUMMARY_KEYS, r, strict=True)} for r in rows]


async def alerts(target: str, since: float | None = None) -> list[dict[str, Any]]:
    """Quality regression alerts (rpc "Alert"), oldest first."""
    out = []
    async for row in rows(target, ALERT_KEYS, since, rpc="Alert"):
        doc = dict(zip(ALERT_KEYS, row, strict=True))
        if isinstance(doc["features"], str):
            doc["features"] = json.loads(doc["features"])
        out.append(doc)
    return out
