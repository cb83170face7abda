"""The response cache over a real gRPC server and the simulated provider over real HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest_complete import FAST_RESILIENCE, make_config, model

from routecore.calling.providers.sim_server import SimServer
from routecore.config import Config
from routecore.routing.embedding import StaticEmbedder
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

Stub = router_pb2_grpc.RouterStub
THRESHOLD = 0.85
MODELS: dict[str, dict[str, Any]] = {
    "good": model("good", endpoint="up", price=(2.0, 8.0), quality=0.99),
    "error_500-a": model("error_500-a", endpoint="up"),
    "cut_stream": model("cut_stream", endpoint="up"),
    "slow_400": model("slow_400", endpoint="up"),
}
CACHE = {"exact": {"ttl_s": 600}, "semantic": {"threshold": THRESHOLD, "ttl_s": 600}}


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(make_config(MODELS, endpoints={"up": {"kind": "simulated"}})) as srv:
        yield srv


def _config(srv: SimServer, **sections: Any) -> Config:
    cfg = make_config(MODELS, resilience=FAST_RESILIENCE, endpoints={
        "up": {"kind": "openai", "base_url": srv.base_url, "timeout_s": 5}})
    return replace(cfg, extra={**cfg.extra, "cache": CACHE, **sections})


async def _serve(cfg: Config, tmp_path: Path, name: str = "f") -> App:
    app = App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / f"{name}.db"))
    await app.start("127.0.0.1", 0)
    return app


@pytest.fixture
async def served(sim: SimServer, tmp_path: Path) -> AsyncIterator[tuple[Stub, SimServer]]:
    app = await _serve(_config(sim, budgets={"tenants": {"acme": {"usd_per_day": 100}}}),
                       tmp_path)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield Stub(ch), sim
    await app.stop(0.5)


def _req(prompt: str, tenant: str = "acme", model_name: str = "good",
         **kw: Any) -> pb.CompleteRequest:
    return pb.CompleteRequest(route=pb.RouteRequest(
        prompt=prompt, tenant=tenant, constraints=pb.Constraints(allow_models=[model_name])),
        **kw)


def _calls(srv: SimServer, model_id: str = "good") -> int:
    state = srv.engine._state.get(model_id)
    return state.calls if state else 0


async def test_repeat_and_paraphrase_hit_free_and_uncharged(served: tuple[Stub, SimServer]) -> None:
    """A repeat is an exact hit and a paraphrase a semantic one: no upstream call, cost 0,
    the saved cost reported, and the tenant's budget not charged."""
    stub, srv = served
    first = await stub.Complete(_req("How do I reverse a list in Python?"), timeout=10)
    assert first.cache_hit == "none" and first.cost_usd > 0 and first.saved_usd == 0
    spent = (await stub.GetBudget(pb.BudgetRequest(tenant="acme"), timeout=5)).windows[0].spent
    calls = _calls(srv)
    again = await stub.Complete(_req("How do I reverse a list in  Python? "), timeout=10)
    para = await stub.Complete(_req("How can I reverse a Python list?"), timeout=10)
    assert (again.cache_hit, para.cache_hit) == ("exact", "semantic")
    for hit in (again, para):
        assert hit.text == first.text and hit.model == "good" and hit.cost_usd == 0
        assert hit.saved_usd == pytest.approx(first.cost_usd) and not hit.attempts
    assert _calls(srv) == calls
    after = (await stub.GetBudget(pb.BudgetRequest(tenant="acme"), timeout=5)).windows[0].spent
    assert after == pytest.approx(spent)


@pytest.mark.parametrize(("stored", "asked"), [
    ("Convert 30 miles to km", "Convert 50 miles to km"),
    ("Is Paris in France?", "Is Paris not in France?"),
    ("What is the capital of France?", "What is the capital of Spain?"),
    ("How do I sort a dictionary by value in Python?",
     "How do I sort a dictionary by key in Python?"),
])
async def test_a_different_number_negation_or_name_never_hits(
        served: tuple[Stub, SimServer], stored: str, asked: str) -> None:
    """Prompts closer than the threshold that differ in a number, a negation, a name or a
    content word are answered fresh, not from the cache."""
    emb = StaticEmbedder.shipped()
    assert float(emb.embed(stored) @ emb.embed(asked)) >= THRESHOLD  # similarity alone would
    stub, srv = served
    await stub.Complete(_req(stored), timeout=10)
    calls = _calls(srv)
    res = await stub.Complete(_req(asked), timeout=10)
    assert res.cache_hit == "none" and res.cost_usd > 0 and _calls(srv) == calls + 1


async def test_another_tenant_never_hits(served: tuple[Stub, SimServer]) -> None:
    """The same prompt, or a paraphrase, from another tenant is never served another's answer."""
    stub, _ = served
    await stub.Complete(_req("How do I reverse a list in Python?", tenant="acme"), timeout=10)
    for tenant, prompt in (("globex", "How do I reverse a list in Python?"),
                           ("initech", "How can I reverse a Python list?")):
        res = await stub.Complete(_req(prompt, tenant=tenant), timeout=10)
        assert res.cache_hit == "none" and res.cost_usd > 0


async def test_bypass_refresh_and_max_age(served: tuple[Stub, SimServer]) -> None:
    """bypass neither reads nor stores; refresh skips the lookup and stores; a hit must be at
    most cache_max_age_s old."""
    stub, srv = served
    p = f"Name three uses of baking soda ({uuid.uuid4().hex[:6]})"
    assert (await stub.Complete(_req(p, cache="bypass"), timeout=10)).cache_hit == "none"
    assert (await stub.Complete(_req(p), timeout=10)).cache_hit == "none"  # bypass stored nothing
    assert (await stub.Complete(_req(p, cache="bypass"), timeout=10)).cache_hit == "none"
    calls = _calls(srv)
    fresh = await stub.Complete(_req(p, cache="refresh"), timeout=10)
    assert fresh.cache_hit == "none" and fresh.cost_usd > 0 and _calls(srv) == calls + 1
    hit = await stub.Complete(_req(p, cache="default", cache_max_age_s=60), timeout=10)
    assert hit.cache_hit == "exact"
    await asyncio.sleep(1.1)
    old = await stub.Complete(_req(p, cache_max_age_s=1), timeout=10)
    assert old.cache_hit == "none" and old.cost_usd > 0
    assert (await stub.Complete(_req(p, cache_max_age_s=1), timeout=10)).cache_hit == "exact"


async def test_temperature_above_zero_is_cached_only_when_allowed(
        served: tuple[Stub, SimServer]) -> None:
    """temperature > 0 is never looked up nor stored, unless the request says cache: allow."""
    stub, _ = served
    p = "Write a limerick about a cat."
    for _ in range(2):
        assert (await stub.Complete(_req(p, temperature=0.7), timeout=10)).cache_hit == "none"
    assert (await stub.Complete(_req(p, temperature=0.7, cache="allow"),
                                timeout=10)).cache_hit == "none"
    assert (await stub.Complete(_req(p, temperature=0.7, cache="allow"),
                                timeout=10)).cache_hit == "exact"
    # a different temperature is a different key
    assert (await stub.Complete(_req(p, temperature=0.9, cache="allow"),
                                timeout=10)).cache_hit == "none"


async def test_errors_truncated_and_cut_streams_are_never_stored(
        served: tuple[Stub, SimServer]) -> None:
    """A failed call, an answer cut at max tokens and a stream that broke are not cached."""
    stub, srv = served
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Complete(_req("What is 2+2?", model_name="error_500-a"), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    p = "Explain the water cycle in detail."
    for _ in range(2):
        res = await stub.Complete(_req(p, max_output_tokens=2), timeout=10)
        assert res.finish_reason == "length" and res.cache_hit == "none" and res.cost_usd > 0
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _c in stub.CompleteStream(_req(p, model_name="cut_stream"), timeout=10):
                pass
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _calls(srv, "cut_stream") == 2


async def test_a_stream_is_served_from_the_cache_as_a_stream(
        served: tuple[Stub, SimServer]) -> None:
    """A streamed answer is stored when it ends well and a repeat streams it back in several
    chunks, the last one done with usage, cost 0 and the saved cost."""
    stub, srv = served
    p = "Describe the history of the printing press and its effect on literacy in Europe."
    first = [c async for c in stub.CompleteStream(_req(p), timeout=10)]
    assert first[-1].done and first[-1].cache_hit == "none" and first[-1].cost_usd > 0
    calls = _calls(srv)
    again = [c async for c in stub.CompleteStream(_req(p), timeout=10)]
    assert _calls(srv) == calls
    assert len(again) >= 3 and all(c.cache_hit == "exact" for c in again)
    assert "".join(c.delta for c in again) == "".join(c.delta for c in first)
    assert again[-1].done and not any(c.done for c in again[:-1])
    assert again[-1].cost_usd == 0 and again[-1].saved_usd == pytest.approx(first[-1].cost_usd)
    whole = await stub.Complete(_req(p), timeout=10)  # Complete reads what the stream stored
    assert whole.cache_hit == "exact"


@pytest.mark.parametrize(("kw", "field"), [
    ({"cache": "sometimes"}, "cache: must be one of default, bypass, refresh, allow"),
    ({"cache": "x" * 100_000}, "cache: must be one of"),
    ({"cache_max_age_s": -1}, "cache_max_age_s: must be in [0, "),
    ({"cache_max_age_s": 2**62}, "cache_max_age_s: must be in [0, "),
])
async def test_bad_cache_options_are_invalid_argument_naming_the_field(
        served: tuple[Stub, SimServer], kw: dict[str, Any], field: str) -> None:
    """A bad policy or max age is INVALID_ARGUMENT whose message starts with the field."""
    stub, _ = served
    for call in (stub.Complete(_req("hi", **kw), timeout=10),):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details().startswith(field) and len(info.value.details()) < 400
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _c in stub.CompleteStream(_req("hi", **kw), timeout=10):
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_huge_prompt_is_cached_exactly(served: tuple[Stub, SimServer]) -> None:
    """A prompt past the semantic size cap still gets exact hits, promptly."""
    stub, _ = served
    p = "Summarize: " + "the quick brown fox jumps over the lazy dog. " * 8_000
    assert (await stub.Complete(_req(p), timeout=30)).cache_hit == "none"
    assert (await stub.Complete(_req(p), timeout=30)).cache_hit == "exact"
    para = p.replace("Summarize:", "Please summarize:")
    assert (await stub.Complete(_req(para), timeout=30)).cache_hit == "none"


async def test_replicas_share_the_cache_on_redis_but_never_across_tenants(
        sim: SimServer, redis_url: str, tmp_path: Path) -> None:
    """With state.backend redis, an answer made on one replica is an exact and a semantic hit
    on another, and never a hit for another tenant on either."""
    cfg = _config(sim, state={"backend": "redis", "redis_url": redis_url, "timeout_s": 5.0})
    apps = [await _serve(cfg, tmp_path, f"r{i}") for i in range(2)]
    chans = [grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") for a in apps]
    a, b = (Stub(c) for c in chans)
    tenant, other = f"t-{uuid.uuid4().hex[:8]}", f"o-{uuid.uuid4().hex[:8]}"
    try:
        first = await a.Complete(_req("How do I reverse a list in Python?", tenant), timeout=10)
        assert first.cache_hit == "none"
        await asyncio.sleep(0.3)  # A's writer flushes; B reads the log at most every 0.1 s
        exact = await b.Complete(_req("How do I reverse a list in Python?", tenant), timeout=10)
        para = await b.Complete(_req("How can I reverse a Python list?", tenant), timeout=10)
        assert (exact.cache_hit, para.cache_hit) == ("exact", "semantic")
        assert para.text == first.text and para.saved_usd == pytest.approx(first.cost_usd)
        asks = [(stub, p) for stub in (a, b)
                for p in ("How do I reverse a list in Python?", "How can I reverse a Python list?")]
        for i, (stub, p) in enumerate(asks):  # each its own tenant: none has stored anything
            res = await stub.Complete(_req(p, f"{other}-{i}"), timeout=10)
            assert res.cache_hit == "none" and res.cost_usd > 0
    finally:
        for c in chans:
            await c.close()
        for x in apps:
            await x.stop(0)


async def test_the_cli_says_a_hit_and_takes_the_policy(
        sim: SimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`routecore complete` says a cache hit and what it saved; --cache bypass skips it."""
    from routecore.cli import main

    app = await _serve(_config(sim), tmp_path)
    addr = f"127.0.0.1:{app.port}"
    try:
        for _ in range(2):
            assert await asyncio.to_thread(main, ["complete", "--addr", addr, "--allow", "good",
                                                  "Write a haiku about rain."]) == 0
        err = capsys.readouterr().err.strip().splitlines()
        assert "cache hit" not in err[0] and "cache hit exact (saved $" in err[1]
        assert await asyncio.to_thread(main, ["complete", "--addr", addr, "--allow", "good",
                                              "--cache", "bypass", "--cache-max-age", "5",
                                              "Write a haiku about rain."]) == 0
        assert "cache hit" not in capsys.readouterr().err
    finally:
        await app.stop(0)


async def test_identical_completes_in_flight_share_one_call(
        served: tuple[Stub, SimServer]) -> None:
    """Five identical Completes at once make one upstream call; the others wait for its
    answer and are exact hits. A failing leader never makes the others fail for it."""
    stub, srv = served
    p = f"What is the tallest mountain in Africa? ({uuid.uuid4().hex[:6]})"
    res = await asyncio.gather(*(stub.Complete(_req(p, model_name="slow_400"), timeout=10)
                                 for _ in range(5)))
    assert _calls(srv, "slow_400") == 1
    assert sorted(r.cache_hit for r in res) == ["exact"] * 4 + ["none"]
    assert len({r.text for r in res}) == 1
    assert sum(r.cost_usd for r in res) == pytest.approx(max(r.cost_usd for r in res))
    bad = _req("What is 2+2?", model_name="error_500-a")
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Complete(bad, timeout=10)
    one = _calls(srv, "error_500-a")  # upstream calls of one failing request, retries included
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    out = await asyncio.gather(*(stub.Complete(bad, timeout=10) for _ in range(3)),
                               return_exceptions=True)
    assert all(isinstance(e, grpc.aio.AioRpcError) and
               e.code() == grpc.StatusCode.UNAVAILABLE for e in out)
    assert loop.time() - t0 < 5  # the followers woke when the leader failed
    assert _calls(srv, "error_500-a") > 2 * one  # then the followers called for themselves


async def test_the_audit_record_and_metrics_say_the_cache_outcome(
        sim: SimServer, tmp_path: Path) -> None:
    """Each Complete's audit record says miss or the hit kind (with the saved USD), a hit is
    recorded at cost 0, and /metrics counts outcomes and the saved USD."""
    from test_shadow import metrics_text, value  # the same /metrics scrape

    from routecore.observe.store import documents

    app = App.from_config(_config(sim), access_log=False,
                          feedback_db=str(tmp_path / "f.db"))
    app.audit_db, app.metrics_port = str(tmp_path / "audit.db"), 0
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = Stub(ch)
            first = await stub.Complete(_req("How do I reverse a list in Python?"), timeout=10)
            await stub.Complete(_req("How do I reverse a list in Python?"), timeout=10)
            _ = [c async for c in stub.CompleteStream(
                _req("How can I reverse a Python list?"), timeout=10)]
        text = await metrics_text(app)
    finally:
        await app.stop(0.5)
    docs = [d async for d in documents(str(tmp_path / "audit.db"))]
    assert [(d["rpc"], d["cache"]) for d in docs] == [
        ("Complete", "miss"), ("Complete", "exact"), ("CompleteStream", "semantic")]
    assert docs[1]["cost_usd"] == 0 and docs[2]["cost_usd"] == 0
    for d in docs[1:]:
        assert d["features"]["cache_saved_usd"] == pytest.approx(first.cost_usd)
    for outcome in ("miss", "exact", "semantic"):
        assert value(text, rf'routecore_cache_requests_total\{{outcome="{outcome}"\}}') == 1
    assert value(text, r'routecore_cache_saved_usd_total\{model="good",tenant="acme"\}') == \
        pytest.approx(2 * first.cost_usd)
