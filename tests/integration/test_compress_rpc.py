"""Prompt compression over a real grpc.aio server (and the HTTP front door), with the
simulated upstream served over real HTTP so the test sees what was sent upstream."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import openai
import pytest
from aiohttp import web
from conftest_complete import FAST_RESILIENCE, _base, make_config, model

from routecore.calling.providers.sim_server import SimServer
from routecore.config import Config, parse_config
from routecore.routing.tokens import count_tokens
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

Stub = router_pb2_grpc.RouterStub
QUESTION = "How tall is the Eiffel Tower in Paris?"
NEEDLE = "The Eiffel Tower in Paris is 330 metres tall."
FILLER = ["The river town held a market every Saturday morning",
          "Bakers sold rye bread and honey cakes to travellers",
          "Children played football in the square after school",
          "Farmers brought apples, pears and plums from the hills"]
CONTEXT = " ".join([f"{FILLER[i % 4]} (fact {i})." for i in range(60)] + [NEEDLE] +
                   [f"{FILLER[i % 4]} (fact {i})." for i in range(60, 160)])
PROMPT = CONTEXT + "\n\n" + QUESTION
# "small" cannot take PROMPT (about 2,100 tokens) in its context window; "large" can.
LARGE = pb.Constraints(allow_models=["large"])
MODELS = {
    "small": model("small", endpoint="up", price=(0.1, 0.2), quality=0.8, context_window=1_500),
    "large": model("large", endpoint="up", price=(5.0, 15.0), quality=0.8),
}


def _config(sim: SimServer, compress: dict[str, Any] | None = None) -> Config:
    raw = {**_base(), "models": MODELS, "resilience": FAST_RESILIENCE,
           "endpoints": {"up": {"kind": "openai", "base_url": sim.base_url, "timeout_s": 5}},
           "routing": {"default_strategy": "multi_objective"}}
    if compress is not None:
        raw["compress"] = compress
    return parse_config(raw, "<test>")


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[SimServer, list[dict[str, Any]]]]:
    """The simulated upstream over HTTP, recording every chat-completions body it receives."""
    bodies: list[dict[str, Any]] = []

    @web.middleware
    async def record(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                     ) -> web.StreamResponse:
        if request.path == "/v1/chat/completions":
            bodies.append(await request.json())
        return await handler(request)

    srv = SimServer(make_config(MODELS, endpoints={"up": {"kind": "simulated"}}))
    srv.app.middlewares.append(record)
    async with srv:
        yield srv, bodies


async def _serve(config: Config, tmp_path: Path) -> App:
    app = App.from_config(config, access_log=False, feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0, http_port=0)
    return app


@pytest.fixture
async def served(upstream: tuple[SimServer, list[dict[str, Any]]],
                 tmp_path: Path) -> AsyncIterator[tuple[App, Stub, list[dict[str, Any]]]]:
    app = await _serve(_config(upstream[0]), tmp_path)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield app, Stub(ch), upstream[1]
    await app.stop(0.5)


def _req(**compress: Any) -> pb.RouteRequest:
    return pb.RouteRequest(prompt=PROMPT, compress=pb.Compress(**compress))


async def test_route_reports_tokens_saved_and_fits_a_cheaper_model(
        served: tuple[App, Stub, list[dict[str, Any]]]) -> None:
    """Route decides on the compressed prompt: input_tokens counts it, the report says what
    was saved, and a model whose context window the whole prompt overflows becomes eligible."""
    _app, stub, _bodies = served
    plain = await stub.Route(pb.RouteRequest(prompt=PROMPT, strategy="cost"), timeout=10)
    assert not plain.HasField("compression") and plain.input_tokens == count_tokens(PROMPT)
    assert plain.model == "large"
    squeezed = await stub.Route(pb.RouteRequest(prompt=PROMPT, strategy="cost", compress=pb.Compress(
        max_input_tokens=600)), timeout=10)
    c = squeezed.compression
    assert squeezed.model == "small" and squeezed.input_tokens <= 600
    assert c.input_tokens_before == plain.input_tokens
    assert c.tokens_saved == plain.input_tokens - squeezed.input_tokens > 0
    assert 0 < c.chunks_dropped < c.chunks
    assert squeezed.estimated_cost_usd < plain.estimated_cost_usd


async def test_complete_sends_the_compressed_prompt_upstream(
        served: tuple[App, Stub, list[dict[str, Any]]]) -> None:
    """Complete sends the compressed text upstream (the question and the relevant sentence in
    it) and reports tokens saved; the upstream counts fewer input tokens than uncompressed."""
    _app, stub, bodies = served
    full = await stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(
        prompt=PROMPT, constraints=LARGE)), timeout=10)
    assert full.tokens_saved == 0 and bodies[-1]["messages"][-1]["content"] == PROMPT
    res = await stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(
        prompt=PROMPT, constraints=LARGE, compress=pb.Compress(target_ratio=0.25))), timeout=10)
    sent = bodies[-1]["messages"][-1]["content"]
    assert len(bodies[-1]["messages"]) == 1 and sent.endswith(QUESTION) and NEEDLE in sent
    assert len(sent) < len(PROMPT) // 2
    assert res.tokens_saved == res.decision.compression.tokens_saved > 0
    assert res.decision.input_tokens == count_tokens(sent) <= math.floor(0.25 * count_tokens(PROMPT))
    assert 0 < res.usage.input_tokens < full.usage.input_tokens


async def test_stream_sends_compressed_messages_and_reports_the_saving(
        served: tuple[App, Stub, list[dict[str, Any]]]) -> None:
    """CompleteStream sends the compressed chat upstream (system message untouched) and its
    last chunk carries tokens_saved."""
    _app, stub, bodies = served
    system = "You answer in one short sentence."
    req = pb.CompleteRequest(route=pb.RouteRequest(
        messages=[pb.Message(role="system", content=system),
                  pb.Message(role="user", content=PROMPT)],
        constraints=LARGE, compress=pb.Compress(max_input_tokens=400)))
    chunks = [c async for c in stub.CompleteStream(req, timeout=10)]
    assert chunks[-1].done and chunks[-1].tokens_saved > 0
    assert not any(c.tokens_saved for c in chunks[:-1])
    msgs = bodies[-1]["messages"]
    assert msgs[0] == {"role": "system", "content": system}
    assert msgs[1]["content"].endswith(QUESTION) and len(msgs[1]["content"]) < len(PROMPT) // 3


async def test_category_config_compresses_without_a_request_setting(
        upstream: tuple[SimServer, list[dict[str, Any]]], tmp_path: Path) -> None:
    """With compress.categories set for every category, Route compresses on its own; a
    request's target_ratio 1 turns it off."""
    cats = {name: {"max_input_tokens": 500} for name in _base()["categories"]}
    app = await _serve(_config(upstream[0], {"categories": cats}), tmp_path)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = Stub(ch)
            d = await stub.Route(pb.RouteRequest(prompt=PROMPT), timeout=10)
            assert d.compression.tokens_saved > 0 and d.input_tokens <= 500
            off = await stub.Route(_req(target_ratio=1.0), timeout=10)
            assert not off.HasField("compression")
    finally:
        await app.stop(0.5)


@pytest.mark.parametrize(("compress", "needle"), [
    ({"target_ratio": 0.0}, "compress.target_ratio: must be in (0, 1], got 0.0"),
    ({"target_ratio": -1.0}, "compress.target_ratio: must be in (0, 1]"),
    ({"target_ratio": 1.5}, "compress.target_ratio: must be in (0, 1]"),
    ({"target_ratio": math.nan}, "compress.target_ratio: must be in (0, 1], got nan"),
    ({"target_ratio": math.inf}, "compress.target_ratio: must be in (0, 1]"),
    ({"target_ratio": 0.5, "max_input_tokens": 100}, "compress: give target_ratio or "
                                                     "max_input_tokens, not both"),
    ({}, "compress: give target_ratio or max_input_tokens"),
    ({"max_input_tokens": 0}, "compress.max_input_tokens: must be an integer in [1, 10000000]"),
    ({"max_input_tokens": 4_000_000_000}, "compress.max_input_tokens: must be an integer in"),
])
async def test_bad_settings_are_invalid_argument(
        served: tuple[App, Stub, list[dict[str, Any]]], compress: dict[str, Any],
        needle: str) -> None:
    """Route, Complete and CompleteStream refuse a bad compress setting with
    INVALID_ARGUMENT naming the field, and nothing goes upstream."""
    _app, stub, bodies = served
    calls: list[Any] = [
        stub.Route(_req(**compress), timeout=10),
        stub.Complete(pb.CompleteRequest(route=_req(**compress)), timeout=10)]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert needle in (info.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub.CompleteStream(pb.CompleteRequest(route=_req(**compress)),
                                           timeout=10):
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in (info.value.details() or "")
    assert bodies == []


async def test_http_front_door_compresses_through_the_sdk(
        served: tuple[App, Stub, list[dict[str, Any]]]) -> None:
    """`routecore.compress` in the body compresses what goes upstream and the reply reports
    the saving; a bad value is a 400 naming routecore.compress.<field>."""
    app, _stub, bodies = served
    assert app.http is not None
    async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{app.http.port}/v1",
                                  api_key="unused", max_retries=0) as client:
        resp = await client.chat.completions.create(
            model="large", messages=[{"role": "user", "content": PROMPT}],
            extra_body={"routecore": {"compress": {"max_input_tokens": 500}}})
        report = resp.model_extra["routecore"]["decision"]["compression"]  # type: ignore[index]
        assert report["tokens_saved"] > 0
        sent = bodies[-1]["messages"][-1]["content"]
        assert sent.endswith(QUESTION) and len(sent) < len(PROMPT) // 3
        for bad, field in (({"target_ratio": 2}, "routecore.compress.target_ratio"),
                           ({"max_input_tokens": 1.5}, "routecore.compress.max_input_tokens"),
                           ({"ratio": 0.5}, "routecore.compress.ratio: unknown field"),
                           ({"target_ratio": 0.5, "max_input_tokens": 9}, "not both")):
            with pytest.raises(openai.BadRequestError) as err:
                await client.chat.completions.create(
                    model="large", messages=[{"role": "user", "content": PROMPT}],
                    extra_body={"routecore": {"compress": bad}})
            assert err.value.status_code == 400 and field in err.value.message


async def test_audit_records_and_metrics_carry_the_saving(
        upstream: tuple[SimServer, list[dict[str, Any]]], tmp_path: Path) -> None:
    """A compressed Route, Complete and RouteBatch item each keep their saving in the audit
    record (features.compress), an uncompressed one does not, and /metrics sums them in
    routecore_tokens_total{direction="saved"}."""
    from test_audit_metrics import flushed_metrics

    from routecore.observe.store import documents

    app = App.from_config(_config(upstream[0]), access_log=False)
    app.audit_db, app.metrics_port = str(tmp_path / "audit.db"), 0
    app.feedback_db = str(tmp_path / "feedback.db")
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = Stub(ch)
            d = await stub.Route(_req(max_input_tokens=500), timeout=10)
            c = await stub.Complete(pb.CompleteRequest(route=_req(max_input_tokens=500)),
                                    timeout=10)
            b = await stub.RouteBatch(pb.RouteBatchRequest(requests=[
                _req(target_ratio=0.3), pb.RouteRequest(prompt=PROMPT)]), timeout=10)
        metrics = await flushed_metrics(app)
    finally:
        await app.stop(0.5)
    docs = [doc async for doc in documents(str(tmp_path / "audit.db"))]
    assert [doc["rpc"] for doc in docs] == ["Route", "Complete", "RouteBatch", "RouteBatch"]
    saved = [doc["features"].get("compress", {}).get("tokens_saved", 0) for doc in docs]
    assert saved == [d.compression.tokens_saved, c.tokens_saved,
                     b.decisions[0].compression.tokens_saved, 0]
    assert all(s > 0 for s in saved[:3])
    assert docs[0]["features"]["compress"]["input_tokens_before"] == count_tokens(PROMPT)
    counted = sum(float(v) for v in re.findall(
        r'^routecore_tokens_total\{direction="saved",model="[^"]+"\} ([0-9.e+]+)$', metrics,
        re.M))
    assert counted == sum(saved)
