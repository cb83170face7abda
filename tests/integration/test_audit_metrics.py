"""The audit trail and /metrics over a real grpc.aio server: every audited RPC writes one
complete record (SQLite and PostgreSQL), and /metrics shows real values after traffic."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from routecore.cli import main
from routecore.config import load_config, parse_config
from routecore.observe.store import documents, summary
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

PROMPT = "Write a Python function that merges two sorted lists."


async def _start(audit_db: str, metrics: bool = True, config: Any = None) -> App:
    app = App.from_config(config or load_config(None), access_log=False)
    app.audit_db, app.metrics_port = audit_db, (0 if metrics else None)
    app.feedback_db = str(Path(audit_db).with_name("feedback.db")) if "://" not in audit_db \
        else None
    await app.start("127.0.0.1", 0)
    return app


async def _traffic(app: App) -> dict[str, Any]:
    """One of each audited RPC, plus a rejected Route; returns what the client saw."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        route = await stub.Route(pb.RouteRequest(prompt=PROMPT, tenant="acme", user="u1",
                                                  explain=True))
        done = await stub.Complete(pb.CompleteRequest(
            route=pb.RouteRequest(prompt="What is the capital of Australia?", tenant="acme"),
            max_output_tokens=32), timeout=10)
        chunks = [c async for c in stub.CompleteStream(pb.CompleteRequest(
            route=pb.RouteRequest(prompt="Write a haiku about rain.", tenant="beta")), timeout=10)]
        fb = await stub.Feedback(pb.FeedbackRequest(request_id=route.request_id,
                                                    model=route.model, score=0.9))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Route(pb.RouteRequest(prompt=""))
    return {"route": route, "complete": done, "stream": chunks, "feedback": fb}


async def flushed_metrics(app: App) -> str:
    """The audit records written so far, then /metrics as text (the app's metrics port)."""
    assert app.observer is not None and app.observer.recorder is not None
    await app.observer.recorder.flush()
    assert app.observer.server is not None
    url = f"http://127.0.0.1:{app.observer.server.port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return await r.text()


@pytest.fixture
async def sqlite_app(tmp_path: Path) -> AsyncIterator[App]:
    app = await _start(str(tmp_path / "audit.db"))
    yield app
    await app.stop(0.5)


async def test_every_rpc_writes_one_complete_record(sqlite_app: App, tmp_path: Path) -> None:
    """Route, Complete, CompleteStream, Feedback and a failed Route each write one record
    with the decision, candidates, attempts, tokens and cost, and no prompt text."""
    seen = await _traffic(sqlite_app)
    await sqlite_app.stop(0.5)  # the SIGTERM path: drain, then flush the recorder
    docs = [d async for d in documents(str(tmp_path / "audit.db"))]
    assert [d["rpc"] for d in docs] == ["Route", "Complete", "CompleteStream", "Feedback", "Route"]
    route, comp, stream, fb, bad = docs
    r = seen["route"]
    assert route["request_id"] == r.request_id and route["model"] == r.model
    assert (route["tenant"], route["user"], route["status"]) == ("acme", "u1", "OK")
    assert route["strategy"] == r.strategy and route["router_version"] == r.router_version
    assert route["category"] == r.category and route["fallbacks"] == list(r.fallbacks)
    assert len(route["candidates"]) == len(r.candidates) and route["decision_us"] > 0
    for stored, sent in zip(route["candidates"], r.candidates, strict=True):
        assert (stored["model"], stored["provider"], stored["rejected_reason"]) == (
            sent.model, sent.provider, sent.rejected_reason)
        assert stored["estimated_cost_usd"] == pytest.approx(sent.estimated_cost_usd)
        assert stored["predicted_quality"] == pytest.approx(sent.predicted_quality)
    assert route["prompt"] == "" and route["prompt_sha256"] == hashlib.sha256(
        PROMPT.encode()).hexdigest()
    assert route["features"]["chars"] == len(PROMPT) and route["input_tokens"] == r.input_tokens
    assert r.deployment and route["features"]["deployment"] == r.deployment
    c = seen["complete"]
    assert comp["served_model"] == c.model and comp["cost_usd"] == pytest.approx(c.cost_usd)
    assert comp["output_tokens"] == c.usage.output_tokens and comp["attempts"]
    assert comp["attempts"][-1]["outcome"] == "ok" and comp["candidates"]
    assert comp["upstream_ms"] > 0 and comp["latency_ms"] >= comp["upstream_ms"] * 0.5
    assert stream["cost_usd"] == pytest.approx(seen["stream"][-1].cost_usd)
    assert stream["tenant"] == "beta" and stream["model"] and stream["attempts"]
    assert fb["feedback"]["ref_request_id"] == r.request_id and fb["feedback"]["score"] == 0.9
    assert fb["feedback"]["feedback_id"] == seen["feedback"].feedback_id
    assert bad["status"] == "INVALID_ARGUMENT" and bad["error"] and bad["model"] == ""


async def test_metrics_show_real_values_after_traffic(sqlite_app: App) -> None:
    """After traffic, /metrics serves every listed metric, with non-zero counts and the live
    gauges computed (not NaN)."""
    await _traffic(sqlite_app)
    assert sqlite_app.observer is not None and sqlite_app.observer.recorder is not None
    await sqlite_app.observer.recorder.flush()
    assert sqlite_app.observer.server is not None
    url = f"http://127.0.0.1:{sqlite_app.observer.server.port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        text = await resp.text()

    def value(pattern: str) -> float:
        m = re.search(r"^" + pattern + r" ([0-9.e+-]+|NaN)$", text, re.M)
        assert m, f"{pattern} missing from /metrics"
        return float(m.group(1))

    assert value(r'routecore_requests_total\{rpc="Route",status="OK"\}') == 1
    assert value(r'routecore_requests_total\{rpc="Route",status="INVALID_ARGUMENT"\}') == 1
    assert value(r"routecore_decision_seconds_count") >= 3
    assert value(r'routecore_rpc_seconds_count\{rpc="Complete"\}') == 1
    assert value(r'routecore_upstream_seconds_count\{model="[^"]+"\}') >= 1
    assert value(r'routecore_attempts_total\{model="[^"]+",outcome="ok"\}') >= 1
    assert value(r'routecore_tokens_total\{direction="output",model="[^"]+"\}') > 0
    assert value(r'routecore_cost_usd_total\{model="[^"]+",tenant="acme"\}') > 0
    assert value(r'routecore_breaker_state\{model="[^"]+"\}') == 0
    assert value(r'routecore_audit_dropped_total\{reason="queue_full"\}') == 0
    for gauge in ("routing_accuracy", "cost_efficiency", "quality_parity"):
        assert 0 <= value(f"routecore_{gauge}") <= 1.5, gauge
    assert 0 < value("routecore_latency_overhead_seconds") < 1


async def test_postgres_audit_export_and_summary(postgres_dsn: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """With a PostgreSQL DSN the records go into one table by COPY; `audit export` and
    `audit summary` read them back per tenant and model."""
    import asyncpg

    conn = await asyncpg.connect(postgres_dsn)
    await conn.execute("DROP TABLE IF EXISTS routecore_audit")
    await conn.close()
    app = await _start(postgres_dsn, metrics=False)
    app.feedback_db = str(tmp_path / "fb.db")
    try:
        seen = await _traffic(app)
    finally:
        await app.stop(0.5)
    docs = [d async for d in documents(postgres_dsn, tenant="acme")]
    assert [d["rpc"] for d in docs] == ["Route", "Complete"]
    assert docs[0]["request_id"] == seen["route"].request_id and docs[0]["candidates"]
    rows = await summary(postgres_dsn)
    assert sum(r["requests"] for r in rows) == 4 and sum(r["feedback"] for r in rows) == 1
    assert any(r["tenant"] == "beta" and r["spend_usd"] > 0 for r in rows)
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["audit", "export", "--db", postgres_dsn, "--tenant", "beta",
                 "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(x)["rpc"] for x in lines] == ["CompleteStream"]


async def test_cli_export_and_summary_on_sqlite(sqlite_app: App, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`audit export --since` and `audit summary --json` read the SQLite trail a server wrote."""
    await _traffic(sqlite_app)
    await sqlite_app.stop(0.5)
    db = str(tmp_path / "audit.db")
    capsys.readouterr()
    export = ["audit", "export", "--db", db]
    assert await asyncio.to_thread(main, [*export, "--since", "1h", "--format", "jsonl"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5
    assert await asyncio.to_thread(main, [*export, "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out == ""
    assert await asyncio.to_thread(main, ["audit", "summary", "--db", db, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["tenant"] for r in rows} == {"", "acme", "beta"}
    assert await asyncio.to_thread(main, ["audit", "summary", "--db", str(tmp_path / "missing.db")]) == 2
    assert await asyncio.to_thread(main, [*export, "--since", "yesterday-ish"]) == 2


async def test_budget_share_and_outcome(tmp_path: Path) -> None:
    """With budgets on, /metrics shows the tenant's used share and the record says the call
    was within its budget."""
    from importlib import resources

    import yaml

    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["budgets"] = {"tenants": {"acme": {"usd_per_day": 0.5}}}
    app = await _start(str(tmp_path / "audit.db"), config=parse_config(raw))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            await router_pb2_grpc.RouterStub(ch).Complete(pb.CompleteRequest(
                route=pb.RouteRequest(prompt="Summarize the history of Rome.", tenant="acme"),
                max_output_tokens=64), timeout=10)
        assert app.observer is not None and app.observer.recorder is not None
        await app.observer.recorder.flush()
        await app.observer.recorder.flush()  # the probe reads the budget after the spend
        assert app.observer.server is not None
        url = f"http://127.0.0.1:{app.observer.server.port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            text = await resp.text()
    finally:
        await app.stop(0.5)
    m = re.search(r'^routecore_budget_used_ratio\{tenant="acme"\} ([0-9.e+-]+)$', text, re.M)
    assert m and 0 < float(m.group(1)) < 1
    (doc,) = [d async for d in documents(str(tmp_path / "audit.db"))]
    assert doc["budget"] == "within" and doc["features"]["budget"]["share_used"] >= 0


async def test_http_front_door_is_audited_too(tmp_path: Path) -> None:
    """Chat completions through the OpenAI-compatible HTTP door (plain, streamed, refused)
    write audit records like the gRPC calls, marked edge http."""
    import openai

    app = App.from_config(load_config(None), access_log=False,
                          feedback_db=str(tmp_path / "feedback.db"))
    app.audit_db = str(tmp_path / "audit.db")
    await app.start("127.0.0.1", 0, http_port=0)
    try:
        assert app.http is not None
        async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{app.http.port}/v1",
                                      api_key="unused", max_retries=0) as client:
            msgs: Any = [{"role": "user", "content": "Write a haiku about rain."}]
            done = await client.chat.completions.create(model="auto", messages=msgs)
            stream = await client.chat.completions.create(model="auto", messages=msgs,
                                                          stream=True)
            async for _ in stream:
                pass
            with pytest.raises(openai.BadRequestError):
                await client.chat.completions.create(model="auto", messages=[])
    finally:
        await app.stop(0.5)
    docs = [d async for d in documents(str(tmp_path / "audit.db"))]
    assert [(d["rpc"], d["status"]) for d in docs] == [
        ("Complete", "OK"), ("CompleteStream", "OK"), ("Complete", "INVALID_ARGUMENT")]
    assert docs[0]["served_model"] == done.model and docs[0]["cost_usd"] > 0
    assert docs[1]["output_tokens"] > 0 and docs[1]["candidates"]
    assert all(d["features"].get("edge") == "http" for d in docs[:2])


async def test_route_batch_writes_one_record_per_item(tmp_path: Path) -> None:
    """Each RouteBatch item is audited like a Route: its own request id, the key's tenant
    (never the one an item claims), its decision, or its own error; replay reads them."""
    from test_auth_rpc import ACME, auth_config, bearer

    app = App.from_config(auth_config(), access_log=False)
    app.audit_db, app.metrics_port = str(tmp_path / "audit.db"), 0
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            resp = await stub.RouteBatch(pb.RouteBatchRequest(requests=[
                pb.RouteRequest(prompt=PROMPT, user="u1"),
                pb.RouteRequest(prompt="What is 2 + 2?", tenant="globex"),  # another tenant
                pb.RouteRequest(prompt=""),
                pb.RouteRequest(prompt="Translate 'good night' into French."),
            ]), metadata=bearer(ACME))
        metrics = await flushed_metrics(app)
    finally:
        await app.stop(0.5)
    docs = [d async for d in documents(str(tmp_path / "audit.db"))]
    assert [d["rpc"] for d in docs] == ["RouteBatch"] * 4
    assert [d["status"] for d in docs] == ["OK", "PERMISSION_DENIED", "INVALID_ARGUMENT", "OK"]
    assert {d["tenant"] for d in docs} == {"acme"}  # the key's tenant, whatever an item says
    ok = [d for d in docs if d["status"] == "OK"]
    routed = [x for x in resp.decisions if x.model]  # an item that failed has an empty slot
    assert [d["request_id"] for d in ok] == [x.request_id for x in routed]
    assert [d["model"] for d in ok] == [x.model for x in routed]
    assert all(d["decision_us"] > 0 and d["input_tokens"] > 0 for d in ok)
    assert "globex" in docs[1]["error"] and docs[2]["error"].startswith("prompt")
    assert [d["features"]["batch"] for d in docs] == [{"index": i, "size": 4} for i in range(4)]
    assert 'routecore_requests_total{rpc="RouteBatch",status="OK"} 2.0' in metrics
    assert 'routecore_rpc_seconds_count{rpc="RouteBatch"} 1.0' in metrics
    from routecore.learned.replay import Replayer

    report = (await Replayer(auth_config()).run(str(tmp_path / "audit.db"))).report(0)
    assert report["replayed"] == 2  # the routed items; the refused ones are not traffic


async def test_refused_requests_are_audited_as_the_keys_caller(tmp_path: Path) -> None:
    """A request refused before its body was read or scoped (another tenant named, a bad
    field, a bad cache header) is audited under the key's tenant, user and key id, on both
    doors (the HTTP one marked edge http), so `audit export --tenant` finds it."""
    import openai
    from test_auth_rpc import ACME, auth_config, bearer

    app = App.from_config(auth_config(), access_log=False)
    app.audit_db = str(tmp_path / "audit.db")
    await app.start("127.0.0.1", 0, http_port=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(
                    prompt=PROMPT, tenant="globex")), metadata=bearer(ACME))
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Route(pb.RouteRequest(prompt=PROMPT, constraints=pb.Constraints(
                    max_latency_ms=float("nan"))), metadata=bearer(ACME))
        assert app.http is not None
        async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{app.http.port}/v1",
                                      api_key=ACME, max_retries=0) as client:
            msgs: Any = [{"role": "user", "content": PROMPT}]
            with pytest.raises(openai.BadRequestError):
                await client.chat.completions.create(
                    model="auto", messages=msgs, extra_headers={"x-routecore-cache": "nope"})
            with pytest.raises(openai.PermissionDeniedError):
                await client.chat.completions.create(
                    model="auto", messages=msgs, extra_body={"routecore": {"tenant": "globex"}})
    finally:
        await app.stop(0.5)
    docs = [d async for d in documents(str(tmp_path / "audit.db"))]
    assert [(d["rpc"], d["status"]) for d in docs] == [
        ("Complete", "PERMISSION_DENIED"), ("Route", "INVALID_ARGUMENT"),
        ("Complete", "INVALID_ARGUMENT"), ("Complete", "PERMISSION_DENIED")]
    assert [(d["tenant"], d["key_id"]) for d in docs] == [("acme", "acme-1")] * 4
    assert [d["features"].get("edge") for d in docs] == [None, None, "http", "http"]
    assert "x-routecore-cache" in docs[2]["error"] and "globex" in docs[3]["error"]
