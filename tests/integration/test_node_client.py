"""The Node.js example clients against a running server: grpc-js loading protos/, and the
official `openai` npm package against the HTTP front door."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from routecore.config import load_config
from routecore.server.app import App

NODE_DIR = Path(__file__).resolve().parents[2] / "examples" / "node"
OPENAI_JS = "openai_client.js"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def _ensure_modules() -> None:
    modules = NODE_DIR / "node_modules"
    if not ((modules / "@grpc" / "grpc-js").exists() and (modules / "openai").exists()):
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed")
        subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       capture_output=True, timeout=300)


async def _node(*args: str, script: str = "client.js") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / script), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.timeout(360)
async def test_node_client_routes(app: App) -> None:
    """A Node.js client built from protos/ routes, completes, streams and sees clear error statuses."""
    await asyncio.to_thread(_ensure_modules)
    addr = f"127.0.0.1:{app.port}"
    code, out, err = await _node("--addr", addr, "route", "Solve for x: 3x + 7 = 22.")
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
    # After those calls the candidates carry proto3 `optional` fields (observed_p50_ms, rpm_left):
    # printed as themselves, with no synthetic "_observed_p50_ms": "observed_p50_ms" key beside them.
    await asyncio.sleep(1.0)  # the load snapshot refreshes every 0.5 s
    code, out, err = await _node("--addr", addr, "route", "Solve for x: 3x + 7 = 22.")
    cands = json.loads(out)["candidates"]
    assert any("rpm_left" in c for c in cands)
    assert not [k for c in cands for k in c if k.startswith("_")]


@pytest.mark.timeout(360)
async def test_node_openai_package_uses_the_http_front_door(tmp_path: Path) -> None:
    """The `openai` npm package, pointed at /v1, completes, streams with usage, lists models
    and gets OpenAI-shaped errors (404 model_not_found) from the HTTP front door."""
    await asyncio.to_thread(_ensure_modules)
    app = App.from_config(load_config(None), access_log=False,
                          feedback_db=str(tmp_path / "feedback.db"))
    await app.start("127.0.0.1", 0, http_port=0)
    try:
        assert app.http is not None
        base = ("--base-url", f"http://127.0.0.1:{app.http.port}/v1")
        (code, out, err), stream, models, missing = await asyncio.gather(  # node starts slowly
            _node(*base, "complete", "What is 2+2?", script=OPENAI_JS),
            _node(*base, "stream", "Write a haiku about rain.", script=OPENAI_JS),
            _node(*base, "models", script=OPENAI_JS),
            _node(*base, "--model", "gpt-99", "complete", "hi", script=OPENAI_JS))
        assert code == 0, err
        res = json.loads(out)
        assert res["choices"][0]["message"]["content"] and res["model"] != "auto"
        assert res["headers"]["request_id"] and float(res["headers"]["cost_usd"]) > 0
        assert stream[0] == 0, stream[2]
        chunks = [json.loads(line) for line in stream[1].splitlines()]
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        assert chunks[-1]["usage"]["completion_tokens"] > 0
        assert models[0] == 0 and json.loads(models[1])[0] == "auto"
        assert missing[0] == 1 and json.loads(missing[2])["error"]["status"] == 404
        assert json.loads(missing[2])["error"]["code"] == "model_not_found"
    finally:
        await app.stop(0.5)
