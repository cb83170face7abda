"""The one access line per RPC, as `routecore serve` writes it (logging configured, JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Serves on an ephemeral port with logging configured as the CLI does, makes one
# Route call and one failing call, and logs a HotLog line with a secret-looking field.
_SCRIPT = """
import asyncio, sys
import grpc
from routecore.config import load_config
from routecore.logs import HotLog, configure_logging, flush_logging
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb, router_pb2_grpc

configure_logging(sys.argv[1], json=True)

async def main():
    app = App.from_config(load_config(None), feedback_db=":memory:")
    port = await app.start("127.0.0.1", 0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        await stub.Route(pb.RouteRequest(prompt="Solve for x: 3x + 7 = 22."),
                         metadata=[("x-request-id", "r-1")])
        try:
            await stub.Route(pb.RouteRequest(prompt=""))
        except grpc.aio.AioRpcError:
            pass
    await app.stop(0)
    HotLog("routecore.test").info("hot", {"api_key": "sk-x", "input_tokens": 3})

asyncio.run(main())
flush_logging()
"""


def _lines(level: str) -> list[dict[str, object]]:
    res = subprocess.run([sys.executable, "-c", _SCRIPT, level], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return [json.loads(x) for x in res.stderr.splitlines() if x.startswith("{")]


@pytest.mark.timeout(120)
def test_access_line_per_rpc_at_info() -> None:
    """At info each RPC writes one JSON line (OK with its decision, errors with their status),
    stamped and redacted like every other structlog line."""
    lines = _lines("info")
    rpc = [x for x in lines if x["event"] == "rpc"]
    assert len(rpc) == 2
    ok, bad = rpc
    assert ok["rpc"] == "Route" and ok["status"] == "OK" and ok["request_id"] == "r-1"
    assert ok["model"] and ok["category"] == "math" and isinstance(ok["latency_ms"], float)
    assert ok["level"] == "info" and ok["logger"] == "routecore.rpc"
    assert str(ok["timestamp"]).endswith("Z") and set(ok) >= {"timestamp", "level", "logger"}
    assert bad["status"] == "INVALID_ARGUMENT" and "must not be empty" in str(bad["error"])
    hot = next(x for x in lines if x["event"] == "hot")
    assert hot["api_key"] == "***" and hot["input_tokens"] == 3


@pytest.mark.timeout(120)
def test_no_access_line_at_warning() -> None:
    """At warning level neither the OK line nor the client-error line is written."""
    assert not [x for x in _lines("warning") if x["event"] in ("rpc", "hot")]
