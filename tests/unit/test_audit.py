"""The audit recorder, stores and settings without a server: bounded queue, retention,
prompt storage, config errors naming the field."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from routecore.config import load_config, parse_config
from routecore.domain import RouteRequest
from routecore.errors import ConfigError
from routecore.observe.commands import parse_since
from routecore.observe.record import AuditRecord, to_row
from routecore.observe.recorder import Event, Recorder
from routecore.observe.settings import default_audit_path, parse_audit, parse_metrics
from routecore.observe.store import PostgresStore, SqliteStore, documents
from routecore.server.records import Trace, build_record


def _config(**extra: Any) -> Any:
    from importlib import resources

    import yaml

    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw.update(extra)
    return parse_config(raw)


def _build(ev: Event, offset: float) -> AuditRecord:
    return AuditRecord(ts=ev[3] + offset, request_id=ev[1], rpc=ev[0], status=ev[4])


async def test_full_queue_drops_and_counts_never_blocks(tmp_path: Path) -> None:
    """Past queue_size, put() returns at once and counts the drop; what was queued is written."""
    settings = parse_audit(_config(audit={"path": str(tmp_path / "a.db"), "queue_size": 3}))
    rec = Recorder(_build, settings)
    t0 = time.perf_counter()
    for i in range(10):
        rec.put("Route", f"r{i}", t0, "OK", None, None)
    assert rec.dropped == 7
    await rec.aclose()
    docs = [d async for d in documents(str(tmp_path / "a.db"))]
    assert [d["request_id"] for d in docs] == ["r0", "r1", "r2"] and rec.written == 3


async def test_retention_deletes_only_old_rows(tmp_path: Path) -> None:
    """delete_before removes rows older than the cutoff and keeps the rest."""
    store = SqliteStore(tmp_path / "a.db")
    now = time.time()
    await store.write([to_row(AuditRecord(ts=now - 40 * 86400, request_id="old", rpc="Route",
                                          status="OK")),
                       to_row(AuditRecord(ts=now, request_id="new", rpc="Route", status="OK"))])
    assert await store.delete_before(now - 30 * 86400) == 1
    await store.close()
    assert [d["request_id"] async for d in documents(str(tmp_path / "a.db"))] == ["new"]


async def test_a_batch_is_one_transaction(tmp_path: Path) -> None:
    """A batch is written in one transaction: a bad row leaves none of the batch behind
    (and a good batch is one commit, not one per row)."""
    store = SqliteStore(tmp_path / "a.db")
    good = to_row(AuditRecord(ts=time.time(), request_id="ok", rpc="Route", status="OK"))
    with pytest.raises(sqlite3.ProgrammingError):
        await store.write([good, good[:-1]])
    await store.write([good])
    await store.close()
    assert [d["request_id"] async for d in documents(str(tmp_path / "a.db"))] == ["ok"]


def test_prompt_is_stored_only_when_asked() -> None:
    """The prompt text goes into the record only with store_prompts; its SHA-256 always does."""
    req = RouteRequest(prompt="secret plans", tenant="t")
    t = time.perf_counter()
    ev: Event = ("Route", "r1", t, t, "OK", None, Trace(req))
    hidden = build_record(ev, 0.0, store_prompts=False)
    shown = build_record(ev, 0.0, store_prompts=True)
    assert hidden is not None and shown is not None
    assert hidden.prompt == "" and shown.prompt == "secret plans"
    assert hidden.prompt_sha256 == shown.prompt_sha256 != ""
    assert build_record(("ListModels", "r2", t, t, "OK", None, None), 0.0, False) is None


def test_row_round_trip_keeps_candidates_and_category_scores() -> None:
    """Packed candidates and category probabilities come back as stored, for one candidate
    with no reason, for several, and for none."""
    from routecore.observe.record import to_document

    for cands in ([("m1", "p1", 0.5, 0.01, 100.0, float("-inf"), "")],
                  [("m1", "p1", 0.5, 0.01, 100.0, 0.3, "too slow"),
                   ("m2", "p2", 0.9, 0.02, 50.0, 0.7, "")], []):
        rec = AuditRecord(ts=1.0, request_id="r", rpc="Route", status="OK", candidates=cands,
                          category_scores={"code": 0.75, "math": 0.25} if cands else {})
        doc = to_document(to_row(rec))
        assert [tuple(c.values()) for c in doc["candidates"]] == [
            (m, p, q, c, lat, s if s != float("-inf") else None, r)
            for m, p, q, c, lat, s, r in cands]
        assert doc["features"].get("category_scores") == (rec.category_scores or None)


def test_settings_defaults_and_errors(tmp_path: Path) -> None:
    """No audit section: on, SQLite under the state dir (not the cwd); bad fields are named."""
    audit = parse_audit(load_config(None))
    assert audit.enabled and audit.path.endswith("routecore/audit.db")
    assert not audit.path.startswith(str(Path.cwd()) + "/routecore")
    assert default_audit_path({"XDG_STATE_HOME": "/x"}) == "/x/routecore/audit.db"
    assert default_audit_path({"HOME": "/h"}) == "/h/.local/state/routecore/audit.db"
    with pytest.raises(ConfigError) as info:
        parse_audit(_config(audit={"queue_size": 0, "retention_days": -1,
                                   "postgres_dsn": "mysql://x", "colour": 1}))
    text = str(info.value)
    for field in ("audit.queue_size", "audit.retention_days", "audit.postgres_dsn",
                  "audit.colour"):
        assert field in text
    with pytest.raises(ConfigError, match=r"metrics.reference_model: unknown model"):
        parse_metrics(_config(metrics={"reference_model": "gpt-17"}))
    assert parse_metrics(load_config(None)).port == 0


def test_since_parses_relative_iso_and_epoch() -> None:
    """--since takes 24h/7d, ISO dates (UTC) and epoch seconds."""
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_since("1d", now=100_000.0) == 100_000.0 - 86400
    assert parse_since("1970-01-02") == 86400.0
    assert parse_since("12.5") == 12.5


async def test_unwritable_trail_loses_records_counted_not_requests(tmp_path: Path) -> None:
    """When the store cannot be written (here: its directory is a file), batches are lost
    and counted, put() keeps accepting, and the recorder closes cleanly."""
    (tmp_path / "file").write_text("")
    settings = parse_audit(_config(audit={"path": str(tmp_path / "file" / "a.db")}))
    rec = Recorder(_build, settings)
    t0 = time.perf_counter()
    for i in range(3):
        rec.put("Route", f"r{i}", t0, "OK", None, None)
        await rec.flush()
    await rec.aclose()
    assert rec.write_failures == 3 and rec.written == 0 and rec.dropped == 0


async def test_a_trail_from_another_version_is_set_aside_not_failed(tmp_path: Path) -> None:
    """An audit table of an older layout is renamed and kept; new records go to a fresh table."""
    db = tmp_path / "a.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE routecore_audit (ts REAL, request_id TEXT, candidates TEXT)")
    conn.execute("CREATE INDEX routecore_audit_ts ON routecore_audit (ts)")
    conn.execute("INSERT INTO routecore_audit VALUES (1.0, 'old', '[]')")
    conn.commit()
    conn.close()
    store = SqliteStore(db)
    await store.write([to_row(AuditRecord(ts=time.time(), request_id="new", rpc="Route",
                                          status="OK"))])
    await store.close()
    assert [d["request_id"] async for d in documents(str(db))] == ["new"]
    conn = sqlite3.connect(db)
    kept = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if n.startswith("routecore_audit_before_")]
    assert len(kept) == 1
    assert conn.execute(f"SELECT request_id FROM {kept[0]}").fetchall() == [("old",)]
    conn.close()


async def test_postgres_trail_from_another_version_is_set_aside(postgres_dsn: str) -> None:
    """On PostgreSQL too, a table of an older layout is kept aside and writes go on."""
    import asyncpg

    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS routecore_audit")
        await conn.execute("CREATE TABLE routecore_audit (ts DOUBLE PRECISION, request_id TEXT)")
        await conn.execute("CREATE INDEX routecore_audit_ts ON routecore_audit (ts)")
        await conn.execute("INSERT INTO routecore_audit VALUES (1.0, 'old')")
    finally:
        await conn.close()
    store = PostgresStore(postgres_dsn)
    await store.write([to_row(AuditRecord(ts=time.time(), request_id="new", rpc="Route",
                                          status="OK"))])
    await store.close()
    assert [d["request_id"] async for d in documents(postgres_dsn)][-1] == "new"
    conn = await asyncpg.connect(postgres_dsn)
    try:
        kept = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'routecore_audit_before_%'")]
        assert kept
        for name in kept:
            await conn.execute(f"DROP TABLE {name}")
    finally:
        await conn.close()


async def test_a_callers_nan_never_costs_the_batch_its_records(tmp_path: Path) -> None:
    """A refused request carrying NaN/inf constraints is still written (the numbers as null),
    and so is every other record queued with it (one unwritable row used to lose them all)."""
    from routecore.domain import Constraints

    settings = parse_audit(_config(audit={"path": str(tmp_path / "a.db")}))
    rec = Recorder(lambda ev, off: build_record(ev, off, False), settings)
    t0 = time.perf_counter()
    bad = RouteRequest(prompt="hi", tenant="mallory",
                       constraints=Constraints(max_latency_ms=float("nan"),
                                               max_cost_usd=float("inf")))
    rec.put("Route", "r0", t0, "OK", None, Trace(RouteRequest(prompt="a", tenant="acme")))
    rec.put("Route", "r1", t0, "INVALID_ARGUMENT", None, Trace(bad))
    rec.put("Route", "r2", t0, "OK", None, Trace(RouteRequest(prompt="b", tenant="globex")))
    await rec.aclose()
    docs = [d async for d in documents(str(tmp_path / "a.db"))]
    assert [(d["request_id"], d["tenant"]) for d in docs] == [
        ("r0", "acme"), ("r1", "mallory"), ("r2", "globex")]
    assert docs[1]["features"]["constraints"] == {"max_cost_usd": None, "max_latency_ms": None}
