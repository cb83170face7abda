"""The Node.js example client (grpc-js loading protos/) against a running server."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from routecore.server.app import App

NODE_DIR = Path(__file__).resolve().parents[2] / "examples" / "node"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def _ensure_modules() -> None:
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed")
        subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       capture_output=True, timeout=300)


async def _node(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "client.js"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.timeout(360)
async def test_node_client_routes(app: App) -> None:
    """A Node.js client built from protos/ routes, completes, streams and sees clear error statuses."""
    await asyncio.to_thread(_ensure_modules)
    addr = f"127.0.0.1:{app.port}"
    code, out, err = await _node("--addr", addr, "route", "What is 2+2?")
    assert code == 0, err
    d = json.loads(out)
    assert d["model"] and d["candidates"] and d["category"] == "math" and d["fallbacks"]
    code, out, err = await _node("--addr", addr, "route", "")
    assert code == 1 and json.loads(err)["error"]["code"] == "INVALID_ARGUMENT"
    code, out, err = await _node("--addr", addr, "models")
    assert code == 0 and len(json.loads(out)["models"]) >= 10
    code, out, err = await _node("--addr", addr, "complete", "Write a haiku about rain.")
    assert code == 0, err
    res = json.loads(out)
    assert res["text"] and res["usage"]["output_tokens"] > 0 and res["cost_usd"] > 0
    code, out, err = await _node("--addr", addr, "stream", "Write a haiku about rain.")
    assert code == 0, err
    chunks = [json.loads(line) for line in out.splitlines()]
    assert chunks[-1]["done"] and chunks[-1]["usage"]["output_tokens"] > 0
    assert "".join(c["delta"] for c in chunks)
