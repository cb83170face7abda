"""Shadow evaluation over a real grpc.aio server and the simulated provider over real HTTP:
the caller's answer is untouched, sampling holds its share, the shadow cap stops shadow
calls without touching callers' budgets, outcomes reach the audit trail and /metrics."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import openai
import pytest
import yaml
from conftest_complete import FAST_RESILIENCE, _base, make_config, model

from routecore.calling.providers.sim_server import SimServer
from routecore.cli import main
from routecore.config import Config, load_config
from routecore.observe.shadow import ShadowOutcome
from routecore.observe.store import documents, summary
from routecore.server.app import App
from routecore.server.reload import reload_config
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

PROMPT = "Summarize the key points of this meeting about the quarterly budget."
MODELS: dict[str, dict[str, Any]] = {
    "cheap": model("cheap", endpoint="up", price=(0.1, 0.4), quality=0.8),
    "strong": model("strong", endpoint="up", price=(2.0, 8.0), quality=0.95),
    "slow_3000": model("slow_3000", endpoint="up", price=(2.0, 8.0), quality=0.95),
    "error_500-s": model("error_500-s", endpoint="up", price=(2.0, 8.0), quality=0.95),
    "judge-m": model("judge-m", endpoint="up", price=(0.5, 1.0), quality=0.9),
}


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(make_config(MODELS, endpoints={"up": {"kind": "simulated"}})) as srv:
        yield srv


def config(sim: SimServer, **sections: Any) -> Config:
    endpoints = {"up": {"kind": "openai", "base_url": sim.base_url, "timeout_s": 10}}
    return make_config(MODELS, endpoints=endpoints, resilience=FAST_RESILIENCE, **sections)


async def start(cfg: Config, tmp_path: Path, name: str = "a", http: bool = False) -> App:
    app = App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / f"{name}-fb.db"))
    app.audit_db, app.metrics_port = str(tmp_path / f"{name}-audit.db"), 0
    await app.start("127.0.0.1", 0, http_port=0 if http else None)
    return app


def request(prompt: str = PROMPT, tenant: str = "acme", **route: Any) -> pb.CompleteRequest:
    return pb.CompleteRequest(
        route=pb.RouteRequest(prompt=prompt, tenant=tenant, strategy="cost", **route),
        max_output_tokens=32)


def stub(app: App) -> tuple[grpc.aio.Channel, router_pb2_grpc.RouterStub]:
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    return ch, router_pb2_grpc.RouterStub(ch)


async def records(app: App, tmp_path: Path, name: str = "a") -> list[dict[str, Any]]:
    assert app.shadow is not None and app.observer is not None
    assert app.observer.recorder is not None
    await app.shadow.drain()
    await app.observer.recorder.flush()
    return [d async for d in documents(str(tmp_path / f"{name}-audit.db"))]


async def metrics_text(app: App) -> str:
    assert app.observer is not None and app.observer.server is not None
    assert app.observer.recorder is not None
    await app.observer.recorder.flush()
    url = f"http://127.0.0.1:{app.observer.server.port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return await resp.text()


def value(text: str, pattern: str) -> float:
    m = re.search(r"^" + pattern + r" ([0-9.e+-]+|NaN)$", text, re.M)
    assert m, f"{pattern} missing from /metrics"
    return float(m.group(1))


def calls(sim: SimServer, model_id: str) -> int:
    state = sim.engine._state.get(model_id)
    return state.calls if state else 0


async def test_caller_answer_unchanged_and_never_waits_for_a_slow_shadow(
        sim: SimServer, tmp_path: Path) -> None:
    """With a 3 s shadow model at share 1, Complete and CompleteStream return the same answer,
    usage and cost as with shadow off, while the shadow evaluation is still running."""
    off = await start(config(sim), tmp_path, "off")
    on = await start(config(sim, shadow={"model": "slow_3000", "share": 1.0,
                                         "max_usd_per_day": 10}), tmp_path, "on")
    try:
        answers = []
        for app in (off, on):
            ch, s = stub(app)
            async with ch:
                r = await s.Complete(request(), timeout=10)
                assert app.shadow is not None
                if app is on:  # the caller has its answer; the 3 s shadow call has not ended
                    assert app.shadow.in_flight + app.shadow.sampled - app.shadow.completed >= 1
                    assert app.shadow.completed == 0
                chunks = [c async for c in s.CompleteStream(request(prompt=PROMPT + " Now."),
                                                            timeout=10)]
                if app is on:
                    assert app.shadow.completed == 0
            answers.append((r.text, r.model, r.usage.input_tokens, r.usage.output_tokens,
                            r.cost_usd, "".join(c.delta for c in chunks), chunks[-1].cost_usd))
        assert answers[0] == answers[1] and answers[0][1] == "cheap"
        docs = await records(on, tmp_path, "on")
        shadows = [d for d in docs if d["rpc"] == "Shadow"]
        assert len(shadows) == 2 and all(d["served_model"] == "slow_3000" for d in shadows)
        assert all(d["status"] == "OK" and d["shadow"]["winner"] for d in shadows)
        assert not [d for d in await records(off, tmp_path, "off") if d["rpc"] == "Shadow"]
    finally:
        await off.stop(0.5)
        await on.stop(0.5)


async def test_failing_shadow_model_never_fails_the_caller(sim: SimServer, tmp_path: Path) -> None:
    """A shadow model that always answers 500 leaves Complete OK; the outcome is recorded as
    UNAVAILABLE with the failed attempts, and counted as an error at /metrics."""
    app = await start(config(sim, shadow={"model": "error_500-s", "share": 1.0,
                                          "max_usd_per_day": 10}), tmp_path)
    try:
        ch, s = stub(app)
        async with ch:
            r = await s.Complete(request(), timeout=10)
        assert r.model == "cheap" and r.text
        (shadow,) = [d for d in await records(app, tmp_path) if d["rpc"] == "Shadow"]
        assert shadow["status"] == "UNAVAILABLE" and shadow["request_id"] == r.request_id
        assert shadow["attempts"] and all(a["outcome"] != "ok" for a in shadow["attempts"])
        assert shadow["shadow"]["winner"] is None or shadow["shadow"]["winner"] == ""
        assert shadow["cost_usd"] == 0
        text = await metrics_text(app)
        assert value(text, r'routecore_shadow_outcomes_total\{result="error"\}') == 1
        assert 'rpc="Shadow"' not in text  # not a request
    finally:
        await app.stop(0.5)


async def test_share_sampling_over_many_requests(sim: SimServer, tmp_path: Path) -> None:
    """At share 0.3, the evaluated share of 400 requests is within five standard deviations
    of 0.3, and each evaluated request has exactly one Shadow record."""
    app = await start(config(sim, shadow={"model": "strong", "share": 0.3,
                                          "max_usd_per_day": 100, "queue_size": 1000}),
                      tmp_path)
    n = 400
    try:
        ch, s = stub(app)
        async with ch:
            ids = [(await s.Complete(request(prompt=f"{PROMPT} Item {i}."), timeout=10)).request_id
                   for i in range(n)]
        docs = await records(app, tmp_path)
        shadowed = [d["request_id"] for d in docs if d["rpc"] == "Shadow"]
        assert app.shadow is not None and app.shadow.sampled == len(shadowed)
        sd = math.sqrt(n * 0.3 * 0.7)
        assert abs(len(shadowed) - 0.3 * n) < 5 * sd, len(shadowed)
        assert len(set(shadowed)) == len(shadowed) and set(shadowed) <= set(ids)
    finally:
        await app.stop(0.5)


async def test_shadow_cap_stops_shadow_calls_and_spares_the_callers_budget(
        sim: SimServer, tmp_path: Path) -> None:
    """With max_usd_per_day spent, sampled evaluations are dropped (`cap`) and make no shadow
    call; shadow spend stays under the cap; the tenant's budget holds only the callers' own
    costs."""
    cap = 0.001
    app = await start(config(sim, shadow={"model": "strong", "share": 1.0,
                                          "max_usd_per_day": cap},
                             budgets={"tenants": {"acme": {"usd_per_day": 1.0}}}), tmp_path)
    n = 12
    try:
        ch, s = stub(app)
        caller_cost = 0.0
        async with ch:
            for i in range(n):
                caller_cost += (await s.Complete(request(prompt=f"{PROMPT} Part {i}."),
                                                 timeout=10)).cost_usd
                assert app.shadow is not None
                await app.shadow.drain()  # one at a time: each sees the spend before it
            (window,) = (await s.GetBudget(pb.BudgetRequest(tenant="acme"), timeout=5)).windows
        assert window.spent == pytest.approx(caller_cost, abs=1e-9)
        docs = [d for d in await records(app, tmp_path) if d["rpc"] == "Shadow"]
        assert app.shadow is not None
        ran, dropped = len(docs), app.shadow.dropped["cap"]
        assert ran >= 1 and dropped >= 1 and ran + dropped == n
        assert calls(sim, "strong") == ran  # a dropped evaluation calls nothing
        spent = sum(d["cost_usd"] for d in docs)
        assert 0 < spent <= cap
        assert app.completer is not None and app.completer.settings.shadow is not None
        assert await app.shadow.spent_today(app.completer.settings.shadow) == \
            pytest.approx(spent, abs=1e-8)
        text = await metrics_text(app)
        assert value(text, r'routecore_shadow_dropped_total\{reason="cap"\}') == dropped
        assert value(text, r'routecore_shadow_cost_usd_total\{model="strong"\}') == \
            pytest.approx(spent)
        assert value(text, r'routecore_cost_usd_total\{model="cheap",tenant="acme"\}') == \
            pytest.approx(caller_cost)
    finally:
        await app.stop(0.5)


async def test_zero_cap_makes_no_shadow_call(sim: SimServer, tmp_path: Path) -> None:
    """max_usd_per_day 0: every sampled evaluation is dropped at the cap and the shadow model
    is never called."""
    app = await start(config(sim, shadow={"model": "strong", "share": 1.0,
                                          "max_usd_per_day": 0}), tmp_path)
    try:
        ch, s = stub(app)
        async with ch:
            for i in range(3):
                await s.Complete(request(prompt=f"{PROMPT} {i}"), timeout=10)
        docs = await records(app, tmp_path)
        assert not [d for d in docs if d["rpc"] == "Shadow"] and calls(sim, "strong") == 0
        assert app.shadow is not None and app.shadow.dropped["cap"] == 3
    finally:
        await app.stop(0.5)


async def test_judged_outcomes_in_audit_export_summary_and_gauges(
        sim: SimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Judged outcomes are exported with both scores, the winner and costs; `audit summary`
    reports shadow spend apart from the callers' spend; quality parity at /metrics becomes
    the judged routed/shadow ratio and routing accuracy is set; subscribers get each outcome."""
    app = await start(config(sim, shadow={"model": "strong", "share": 1.0, "judge": "judge-m",
                                          "max_usd_per_day": 10}), tmp_path)
    seen: list[ShadowOutcome] = []
    assert app.shadow is not None
    app.shadow.on_outcome.append(seen.append)
    app.shadow.on_outcome.append(lambda _o: 1 / 0)  # a broken subscriber changes nothing
    prompts = [f"Explain how {t} works in a few sentences." for t in
               ("photosynthesis", "a hash map", "TCP slow start", "compound interest",
                "a vaccine", "an electric motor")]
    try:
        text = await metrics_text(app)
        before = value(text, "routecore_quality_parity")
        ch, s = stub(app)
        async with ch:
            paid = [(await s.Complete(request(prompt=p), timeout=10)).cost_usd for p in prompts]
            other = await s.Complete(request(prompt=prompts[0], tenant="globex"), timeout=10)
        docs = [d for d in await records(app, tmp_path) if d["rpc"] == "Shadow"]
        assert len(docs) == len(prompts) + 1 and len(seen) == len(docs)
        for d in docs:
            sh = d["shadow"]
            assert d["status"] == "OK" and sh["judged_by"] == "judge"
            assert sh["judge_model"] == "judge-m" and sh["routed_model"] == "cheap"
            assert 0 <= sh["routed_score"] <= 1 and 0 <= sh["shadow_score"] <= 1
            assert sh["winner"] in ("routed", "shadow", "tie")
            assert sh["shadow_cost_usd"] > 0 and sh["judge_cost_usd"] > 0
            assert d["cost_usd"] == pytest.approx(sh["shadow_cost_usd"] + sh["judge_cost_usd"])
            assert d["served_model"] == "strong" and d["model"] == "cheap"
        acme = [d for d in docs if d["tenant"] == "acme"]
        text = await metrics_text(app)
        ratio = sum(d["shadow"]["routed_score"] for d in docs) / \
            sum(d["shadow"]["shadow_score"] for d in docs)
        assert value(text, "routecore_quality_parity") == pytest.approx(ratio)
        assert value(text, "routecore_quality_parity") != before
        assert 0 <= value(text, "routecore_routing_accuracy") <= 1
        assert value(text, r'routecore_shadow_cost_usd_total\{model="judge-m"\}') > 0
        wins = sum(value(text, rf'routecore_shadow_outcomes_total\{{result="{w}"\}}')
                   for w in ("routed", "shadow", "tie") if f'result="{w}"' in text)
        assert wins == len(docs)
        db = str(tmp_path / "a-audit.db")
        rows = await summary(db, tenant="acme")
        live = [r for r in rows if r["model"] == "cheap"]
        shadow_rows = [r for r in rows if r["model"] == "strong"]
        assert sum(r["spend_usd"] for r in live) == pytest.approx(sum(paid))
        assert sum(r["requests"] for r in live) == len(prompts)
        assert sum(r["shadow_evals"] for r in shadow_rows) == len(acme)
        assert sum(r["spend_usd"] + r["requests"] for r in shadow_rows) == 0
        assert sum(r["shadow_spend_usd"] for r in rows) == pytest.approx(
            sum(d["cost_usd"] for d in acme))
        capsys.readouterr()
        # The CLI runs its own event loop: in a thread, as from a shell.
        assert await asyncio.to_thread(main, ["audit", "export", "--db", db,
                                              "--tenant", "globex"]) == 0
        exported = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [d["rpc"] for d in exported] == ["Complete", "Shadow"]
        assert exported[1]["request_id"] == other.request_id
        assert await asyncio.to_thread(main, ["audit", "summary", "--db", db]) == 0
        out = capsys.readouterr().out
        assert "shadow $" in out.splitlines()[0]
    finally:
        await app.stop(0.5)


async def test_queue_full_drops_with_a_counter(sim: SimServer, tmp_path: Path) -> None:
    """With one worker busy on a 3 s shadow call and a queue of one, further sampled requests
    are dropped, counted at /metrics, and the callers are answered."""
    app = await start(config(sim, shadow={"model": "slow_3000", "share": 1.0,
                                          "max_usd_per_day": 10, "concurrency": 1,
                                          "queue_size": 1}), tmp_path)
    try:
        ch, s = stub(app)
        async with ch:
            for i in range(5):
                r = await s.Complete(request(prompt=f"{PROMPT} {i}"), timeout=10)
                assert r.model == "cheap"
        assert app.shadow is not None and app.shadow.dropped["queue_full"] == 3
        text = await metrics_text(app)
        assert value(text, r'routecore_shadow_dropped_total\{reason="queue_full"\}') == 3
        docs = await records(app, tmp_path)
        assert len([d for d in docs if d["rpc"] == "Shadow"]) == 2
    finally:
        await app.stop(0.5)


async def test_candidate_router_picks_the_shadow_model(sim: SimServer, tmp_path: Path) -> None:
    """shadow.router: a candidate config's router picks the shadow model per request (here
    it knows only `strong`); the outcome names the mode and the candidate's version."""
    cand = tmp_path / "candidate.yaml"
    base = config(sim)
    cand_raw = {
        "router_version": "candidate-7",
        "models": {"strong": MODELS["strong"]},
        "endpoints": {"up": {"kind": "openai", "base_url": sim.base_url}},
        "categories": {name: {"exemplars": list(c.exemplars)[:3] or [name]}
                       for name, c in base.categories.items()},
    }
    cand.write_text(yaml.safe_dump(cand_raw))
    app = await start(config(sim, shadow={"router": str(cand), "share": 1.0,
                                          "max_usd_per_day": 10}), tmp_path)
    try:
        ch, s = stub(app)
        async with ch:
            await s.Complete(request(), timeout=10)
        (d,) = [d for d in await records(app, tmp_path) if d["rpc"] == "Shadow"]
        assert d["status"] == "OK", d["error"]
        assert d["shadow"]["mode"] == "router" and d["served_model"] == "strong"
        assert d["shadow"]["candidate_router_version"] == "candidate-7"
        assert d["shadow"]["judged_by"] == "cheap_checks"
    finally:
        await app.stop(0.5)


async def test_http_front_door_is_shadowed_too(sim: SimServer, tmp_path: Path) -> None:
    """A chat completion through the OpenAI SDK on the HTTP door is evaluated like a gRPC one,
    and its answer is the same as with shadow off."""
    app = await start(config(sim, shadow={"model": "strong", "share": 1.0,
                                          "max_usd_per_day": 10}), tmp_path, http=True)
    try:
        assert app.http is not None
        async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{app.http.port}/v1",
                                      api_key="unused", max_retries=0) as client:
            r = await client.chat.completions.create(
                model="cheap", messages=[{"role": "user", "content": PROMPT}], max_tokens=32)
        assert r.choices[0].message.content
        (d,) = [d for d in await records(app, tmp_path) if d["rpc"] == "Shadow"]
        assert d["model"] == "cheap" and d["served_model"] == "strong"
        assert d["shadow"]["routed_cost_usd"] > 0
    finally:
        await app.stop(0.5)


async def test_redis_cap_is_one_for_the_fleet(sim: SimServer, tmp_path: Path,
                                              redis_url: str) -> None:
    """Two servers on one Redis share one shadow spend counter: together they stay under
    max_usd_per_day, and each reads the other's spend."""
    cap = 0.001
    cfg = config(sim, shadow={"model": "strong", "share": 1.0, "max_usd_per_day": cap},
                 state={"backend": "redis", "redis_url": redis_url})
    apps = [await start(cfg, tmp_path, "a"), await start(cfg, tmp_path, "b")]
    n = 12
    try:
        for i in range(n):
            app = apps[i % 2]
            ch, s = stub(app)
            async with ch:
                await s.Complete(request(prompt=f"{PROMPT} Fleet {i}."), timeout=10)
            assert app.shadow is not None
            await app.shadow.drain()
        docs = [d for name, app in zip("ab", apps, strict=True)
                for d in await records(app, tmp_path, name) if d["rpc"] == "Shadow"]
        dropped = sum(a.shadow.dropped["cap"] for a in apps if a.shadow is not None)
        assert docs and dropped and len(docs) + dropped == n
        spent = sum(d["cost_usd"] for d in docs)
        assert spent <= cap
        for app in apps:
            assert app.shadow is not None and app.completer is not None
            settings = app.completer.settings.shadow
            assert settings is not None
            assert await app.shadow.spent_today(settings) == pytest.approx(spent, abs=1e-8)
    finally:
        for app in apps:
            await app.stop(0.5)


async def test_reload_turns_shadow_on_and_rejects_a_bad_section(sim: SimServer,
                                                                 tmp_path: Path) -> None:
    """A reload (SIGHUP) that adds a shadow section starts evaluating on the next request;
    one with an unknown shadow model is rejected and the running config keeps serving."""
    def write(shadow: dict[str, Any] | None) -> Path:
        raw = json.loads(json.dumps(_raw(sim)))  # a deep copy of plain data
        if shadow is not None:
            raw["shadow"] = shadow
        path = tmp_path / "live.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    path = write(None)
    app = await start(load_config(path), tmp_path)
    try:
        ch, s = stub(app)
        async with ch:
            await s.Complete(request(), timeout=10)
            write({"model": "gpt-9", "share": 1.0, "max_usd_per_day": 1})
            assert await reload_config(app, str(path)) is False
            write({"model": "strong", "share": 1.0, "max_usd_per_day": 1})
            assert await reload_config(app, str(path)) is True
            r = await s.Complete(request(prompt=PROMPT + " Again."), timeout=10)
        (d,) = [d for d in await records(app, tmp_path) if d["rpc"] == "Shadow"]
        assert d["request_id"] == r.request_id and d["served_model"] == "strong"
    finally:
        await app.stop(0.5)


def _raw(sim: SimServer) -> dict[str, Any]:
    """The test config as YAML-ready data (what `config(sim)` validates)."""
    raw = dict(_base())
    raw["models"] = MODELS
    raw["endpoints"] = {"up": {"kind": "openai", "base_url": sim.base_url, "timeout_s": 10}}
    raw["routing"] = {"default_strategy": "multi_objective"}
    raw["resilience"] = FAST_RESILIENCE
    return raw


async def test_postgres_trail_keeps_shadow_apart(sim: SimServer, tmp_path: Path,
                                                 postgres_dsn: str) -> None:
    """On PostgreSQL the Shadow record is written by COPY with its comparison, exported under
    the caller's tenant, and summarised apart from the callers' spend."""
    import asyncpg

    # A database of its own: other test sessions may rebuild the shared one's audit table.
    conn = await asyncpg.connect(postgres_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'rc_shadow_test'"):
            await conn.execute("CREATE DATABASE rc_shadow_test")
    finally:
        await conn.close()
    dsn = postgres_dsn.rsplit("/", 1)[0] + "/rc_shadow_test"
    conn = await asyncpg.connect(dsn)
    await conn.execute("DROP TABLE IF EXISTS routecore_audit")
    await conn.close()
    app = App.from_config(config(sim, shadow={"model": "strong", "share": 1.0,
                                              "max_usd_per_day": 10}),
                          access_log=False, feedback_db=str(tmp_path / "fb.db"))
    app.audit_db = dsn
    await app.start("127.0.0.1", 0)
    try:
        ch, s = stub(app)
        async with ch:
            r = await s.Complete(request(), timeout=10)
        assert app.shadow is not None
        await app.shadow.drain()
    finally:
        await app.stop(0.5)
    docs = [d async for d in documents(dsn, tenant="acme")]
    assert [d["rpc"] for d in docs] == ["Complete", "Shadow"]
    shadow = docs[1]
    assert shadow["request_id"] == r.request_id and shadow["shadow"]["shadow_model"] == "strong"
    assert shadow["shadow"]["judged_by"] == "cheap_checks" and shadow["cost_usd"] > 0
    rows = await summary(dsn)
    assert sum(r["spend_usd"] for r in rows) == pytest.approx(docs[0]["cost_usd"])
    assert sum(r["shadow_spend_usd"] for r in rows) == pytest.approx(shadow["cost_usd"])
    assert sum(r["requests"] for r in rows) == 1 and sum(r["shadow_evals"] for r in rows) == 1


async def test_outcomes_reach_the_regression_detector(sim: SimServer, tmp_path: Path) -> None:
    """With alerts on, each judged shadow outcome of the server becomes one `shadow` signal
    of the routed model in the quality-regression detector."""
    app = await start(config(sim, shadow={"model": "strong", "share": 1.0, "judge": "judge-m",
                                          "max_usd_per_day": 10},
                             alerts={"enabled": True}), tmp_path)
    try:
        ch, s = stub(app)
        async with ch:
            for i in range(3):
                await s.Complete(request(prompt=f"{PROMPT} {i}"), timeout=10)
        docs = [d for d in await records(app, tmp_path) if d["rpc"] == "Shadow"]
        assert app.observer is not None and app.observer.detector is not None
        signals = {k: v for k, v in app.observer.detector.snapshot().items()
                   if k[4] == "shadow"}
        assert {k[0] for k in signals} == {"cheap"}
        assert sum(v[0] for v in signals.values()) == len(docs) == 3
    finally:
        await app.stop(0.5)


async def test_cap_holds_the_dearest_seller_of_the_shadow_model(tmp_path: Path) -> None:
    """The daily cap holds an evaluation's worst case at the dearest deployment it may fail
    over to, not at the model's (cheapest seller's) price: a shadow answer that fails over
    to a seller 100x dearer never takes shadow spend past max_usd_per_day."""
    sold = model("sold", endpoint="up", quality=0.95, deployments=[
        {"name": "cheap", "endpoint": "up", "model_id": "error_500-sold", "provider": "a",
         "price": {"input": 0.5, "output": 0.5}},
        {"name": "dear", "endpoint": "up", "model_id": "sold-dear", "provider": "b",
         "price": {"input": 50.0, "output": 50.0}}])
    del sold["price"]  # every deployment is priced: the model's is its cheapest seller's
    models = {**MODELS, "sold": sold}
    async with SimServer(make_config(models, endpoints={"up": {"kind": "simulated"}})) as srv:
        cap = 1e-4
        cfg = make_config(models, endpoints={"up": {"kind": "openai", "base_url": srv.base_url,
                                                    "timeout_s": 10}},
                          resilience=FAST_RESILIENCE,
                          shadow={"model": "sold", "share": 1.0, "max_usd_per_day": cap})
        app = await start(cfg, tmp_path)
        try:
            ch, s = stub(app)
            async with ch:
                for i in range(3):
                    await s.Complete(request(prompt=f"{PROMPT} Part {i}."), timeout=10)
            docs = [d for d in await records(app, tmp_path) if d["rpc"] == "Shadow"]
            assert sum(d["cost_usd"] for d in docs) <= cap
            assert app.completer is not None and app.completer.settings.shadow is not None
            assert app.shadow is not None and app.shadow.dropped["cap"] == 3
            assert await app.shadow.spent_today(app.completer.settings.shadow) <= cap
        finally:
            await app.stop(0.5)


async def test_a_callers_allow_list_bounds_the_shadow_and_judge_models(
        sim: SimServer, tmp_path: Path) -> None:
    """A caller limited to some models (here by its request; a key's list lands there too)
    never has its prompt sent to a shadow or judge model outside them: no shadow call is
    made when the shadow model is outside, and the answers are scored by the cheap checks
    when only the judge is."""
    app = await start(config(sim, shadow={"model": "strong", "share": 1.0, "judge": "judge-m",
                                          "max_usd_per_day": 10}), tmp_path)
    try:
        ch, s = stub(app)
        async with ch:
            await s.Complete(request(constraints=pb.Constraints(allow_models=["cheap"])),
                             timeout=10)
            await s.Complete(request(prompt="Explain a hash map in a few sentences.",
                                     constraints=pb.Constraints(
                                         allow_models=["cheap", "strong"])), timeout=10)
        docs = [d for d in await records(app, tmp_path) if d["rpc"] == "Shadow"]
        assert app.shadow is not None and app.shadow.dropped["caller_not_allowed"] == 1
        assert len(docs) == 1 and docs[0]["served_model"] == "strong"
        sh = docs[0]["shadow"]
        assert sh["judged_by"] == "cheap_checks" and not sh.get("judge_model")
        assert calls(sim, "judge-m") == 0
    finally:
        await app.stop(0.5)
