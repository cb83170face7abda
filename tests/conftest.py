"""Shared fixtures: a router on the built-in config, and paths to shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The shared routing data (beside the project root), or ROUTECORE_DATA_DIR."""
    env = os.environ.get("ROUTECORE_DATA_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "routing"


@pytest.fixture(scope="session", autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Servers started by tests keep their default audit trail in a temp state dir,
    never the user's ~/.local/state."""
    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if old is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = old


@pytest.fixture(scope="session")
def default_router():  # type: ignore[no-untyped-def]
    from routecore import Router

    return Router.from_config(None)


@pytest.fixture(scope="session")
def redis_url():  # type: ignore[no-untyped-def]
    """A real Redis server's URL for the whole session (see tests/services.py)."""
    from services import redis_server

    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_dsn():  # type: ignore[no-untyped-def]
    """A real PostgreSQL server's DSN for the whole session (see tests/services.py)."""
    from services import postgres_server

    with postgres_server() as dsn:
        yield dsn


class WallClock:
    """Wall-clock seconds (as the state backends read them) that a test can move forward."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=["memory", "redis"])
async def state_backend(request):  # type: ignore[no-untyped-def]
    """A started state backend of each kind (Redis: the real session server), its clock a
    `WallClock` (`backend.clock.advance(s)`): contract suites run over both."""
    from routecore.state import MemoryBackend, RedisBackend, StateConfig

    clock = WallClock()
    if request.param == "memory":
        backend = MemoryBackend(clock=clock)
    else:
        url = request.getfixturevalue("redis_url")
        # A generous timeout: the suite shares a loaded machine with other work.
        backend = RedisBackend(StateConfig(backend="redis", redis_url=url, timeout_s=5.0), clock)
    await backend.start()
    yield backend
    await backend.aclose()
