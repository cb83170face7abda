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
