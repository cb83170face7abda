"""Real Redis and PostgreSQL servers for the tests: started from PATH on free loopback ports.

`.ci/run` starts both itself and exports ROUTECORE_TEST_REDIS_URL and
ROUTECORE_TEST_POSTGRES_DSN; these helpers use those when set, else start a
throwaway server (as pytest-redis / pytest-postgresql do), else skip with the
reason. Under CI (CI=true) a missing server fails the run instead: no test
that needs one may silently not run there. Nothing here mocks either server.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unavailable(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required in CI (.ci/run installs and starts it)")
    pytest.skip(f"{what} not available on this machine")


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A redis:// URL: ROUTECORE_TEST_REDIS_URL, or a throwaway redis-server."""
    url = os.environ.get("ROUTECORE_TEST_REDIS_URL")
    if url:
        with _own_redis_db(url) as own:
            yield own
        return
    exe = shutil.which("redis-server")
    if exe is None:
        _unavailable("redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="rc-redis-") as d:
        proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", d],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_port(port, proc, "redis-server")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


@contextlib.contextmanager
def _own_redis_db(url: str) -> Iterator[str]:
    """A logical database of the shared server that only this test process uses, emptied.

    The suite runs a second pytest (the pure-Python twins) while the first is still
    open; on one shared server they would see each other's budgets and limits.
    """
    import redis

    parts = urlsplit(url)
    probe = redis.Redis.from_url(url)
    try:
        count = int(probe.config_get("databases").get("databases", 16))
    except redis.RedisError:  # CONFIG may be disabled on a managed server
        count = 16
    finally:
        probe.close()
    for db in range(count):
        own = urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))
        r = redis.Redis.from_url(own)
        try:
            if r.set("rc:test:owner", str(os.getpid()), nx=True) or _owner_gone(r):
                for key in r.scan_iter(count=1000):
                    if key != b"rc:test:owner":
                        r.delete(key)
                try:
                    yield own
                finally:
                    r.flushdb()
                return
        finally:
            r.close()
    raise RuntimeError(f"all {count} databases of {url} are taken by other test processes")


def _owner_gone(r: object) -> bool:
    """Take over a database whose owning pytest died without emptying it (same host only)."""
    owner = r.get("rc:test:owner")  # type: ignore[attr-defined]
    try:
        os.kill(int(owner), 0)
    except ProcessLookupError:
        r.set("rc:test:owner", str(os.getpid()))  # type: ignore[attr-defined]
        return True
    except (TypeError, ValueError, PermissionError):
        return False
    return False


@contextlib.contextmanager
def _own_postgres_db(dsn: str) -> Iterator[str]:
    """A fresh database on the shared server for this test process, dropped afterwards."""
    import asyncio

    import asyncpg

    name = f"rc_test_{os.getpid()}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"DROP DATABASE IF EXISTS {name}"))
    asyncio.run(admin(f"CREATE DATABASE {name}"))
    parts = urlsplit(dsn)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    hits = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return hits[-1] if hits else None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A postgresql:// DSN: ROUTECORE_TEST_POSTGRES_DSN, or a throwaway cluster (initdb + pg_ctl)."""
    dsn = os.environ.get("ROUTECORE_TEST_POSTGRES_DSN")
    if dsn:
        with _own_postgres_db(dsn) as own:
            yield own
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        _unavailable("PostgreSQL (initdb, pg_ctl)")
    assert initdb is not None and pg_ctl is not None
    run_as: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        if shutil.which("runuser") is None or subprocess.run(["id", "postgres"],
                                                               capture_output=True).returncode:
            _unavailable("a 'postgres' user to run PostgreSQL as")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    d = Path(tempfile.mkdtemp(prefix="rc-pg-"))
    try:
        if run_as:
            shutil.chown(d, "postgres", "postgres")
        data = d / "data"
        subprocess.run([*run_as, initdb, "-D", str(data), "-U", "postgres", "-A", "trust",
                        "--no-sync"], check=True, capture_output=True)
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-l", str(d / "log"), "-w", "-o",
                        f"-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True)
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)
