"""A real grpc.aio server on an ephemeral port, and a client channel to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from routecore.config import load_config
from routecore.server.app import App
from routecore.v1 import router_pb2_grpc


@pytest.fixture(autouse=True)
async def _fail_on_loop_errors() -> AsyncIterator[None]:
    """Any exception the event loop reports as unhandled fails the test."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    yield
    loop.set_exception_handler(previous)
    assert not errors, f"unhandled event-loop errors: {errors}"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    app = App.from_config(load_config(None), access_log=False,
                          feedback_db=str(tmp_path / "feedback.db"))
    await app.start("127.0.0.1", 0)
    yield app
    await app.stop(0.5)


@pytest.fixture
async def channel(app: App) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> router_pb2_grpc.RouterStub:
    return router_pb2_grpc.RouterStub(channel)
