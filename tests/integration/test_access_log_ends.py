"""Every RPC leaves one access-log line, also when its deadline passes or the client cancels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog

from routecore.config import load_config
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc


@pytest.fixture
async def hanging_app(tmp_path: Path) -> AsyncIterator[App]:
    """A server whose Complete/CompleteStream never answer (and ignore the deadline), so only
    grpc itself ends the RPC."""
    app = App.from_config(load_config(None), access_log=True,
                          feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    assert app.completer is not None

    async def hang(*_: Any, **__: Any) -> Any:
        await asyncio.sleep(60)

    async def hang_stream(*_: Any, **__: Any) -> AsyncIterator[Any]:
        await asyncio.sleep(60)
        yield None

    app.completer.complete = hang  # type: ignore[method-assign]
    app.completer.stream = hang_stream  # type: ignore[method-assign]
    yield app
    await app.stop(0)


async def _line(logs: list[dict[str, Any]], rpc: str) -> dict[str, Any]:
    for _ in range(100):
        lines = [e for e in logs if e.get("event") == "rpc" and e.get("rpc") == rpc]
        if lines:
            assert len(lines) == 1
            return lines[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no access-log line for {rpc}")


async def test_deadline_exceeded_rpc_is_logged(hanging_app: App) -> None:
    """A Complete whose client deadline passes leaves a DEADLINE_EXCEEDED access-log line."""
    with structlog.testing.capture_logs() as logs:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{hanging_app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(prompt="hi")),
                                    timeout=0.2)
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            line = await _line(logs, "Complete")
    assert line["status"] == "DEADLINE_EXCEEDED" and line["request_id"]


async def test_cancelled_stream_is_logged(hanging_app: App) -> None:
    """A CompleteStream the client cancels leaves a CANCELLED access-log line."""
    with structlog.testing.capture_logs() as logs:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{hanging_app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            call = stub.CompleteStream(pb.CompleteRequest(route=pb.RouteRequest(prompt="hi")))
            await asyncio.sleep(0.2)
            call.cancel()
            line = await _line(logs, "CompleteStream")
    assert line["status"] == "CANCELLED"


class _Ctx:
    def __init__(self, remaining: float | None) -> None:
        self.remaining = remaining

    def time_remaining(self) -> float | None:
        return self.remaining


def test_a_cancel_at_the_clients_deadline_is_a_deadline() -> None:
    """The client cancels at its own deadline, a little before the server's (which started
    when the request arrived): such a cancel is DEADLINE_EXCEEDED; an early one CANCELLED."""
    from routecore.errors import Cancelled, DeadlineExceeded
    from routecore.server.interceptors import DEADLINE_SKEW_S, _ended

    assert isinstance(_ended(_Ctx(0.0)), DeadlineExceeded)  # type: ignore[arg-type]
    assert isinstance(_ended(_Ctx(DEADLINE_SKEW_S / 2)), DeadlineExceeded)  # type: ignore[arg-type]
    assert isinstance(_ended(_Ctx(5.0)), Cancelled)  # type: ignore[arg-type]
    assert isinstance(_ended(_Ctx(None)), Cancelled)  # type: ignore[arg-type]
