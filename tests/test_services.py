"""The real servers the state and audit tests run against answer."""

from __future__ import annotations

import asyncio


def test_redis_answers(redis_url: str) -> None:
    """The session's Redis server answers PING and round-trips a key."""
    import redis

    r = redis.Redis.from_url(redis_url)
    assert r.ping()
    r.set("rc:test:ping", "1", ex=5)
    assert r.get("rc:test:ping") == b"1"


def test_postgres_answers(postgres_dsn: str) -> None:
    """The session's PostgreSQL server runs a query."""
    import asyncpg

    async def go() -> int:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            return int(await conn.fetchval("SELECT 1 + 1"))
        finally:
            await conn.close()

    assert asyncio.run(go()) == 2
