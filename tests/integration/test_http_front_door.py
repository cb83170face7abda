"""The OpenAI-compatible HTTP front door, through the official `openai` Python SDK.

Happy paths and SDK-visible errors go through the SDK (sync, async, streaming);
input the SDK cannot send (malformed JSON, huge bodies, wrong types) goes as raw
HTTP, as a hostile client would send it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import openai
import pytest
from conftest_complete import make_config, model

from routecore.config import Config, load_config
from routecore.server.app import App
from routecore.v1 import router_pb2, router_pb2_grpc

HAIKU = [{"role": "user", "content": "Write a haiku about rain."}]


async def _start(config: Config, tmp_path: Path) -> App:
    app = App.from_config(config, access_log=False, feedback_db=str(tmp_path / "feedback.db"))
    await app.start("127.0.0.1", 0, http_port=0)
    return app


@pytest.fixture
async def http_app(tmp_path: Path) -> AsyncIterator[App]:
    app = await _start(load_config(None), tmp_path)
    yield app
    await app.stop(0.5)


def _base(app: App) -> str:
    assert app.http is not None
    return f"http://127.0.0.1:{app.http.port}/v1"


@pytest.fixture
async def aclient(http_app: App) -> AsyncIterator[openai.AsyncOpenAI]:
    async with _client(http_app) as client:
        yield client


@pytest.fixture
def sclient(http_app: App) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=_base(http_app), api_key="unused", max_retries=0) as client:
        yield client


def _client(app: App) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=_base(app), api_key="unused", max_retries=0)


async def test_async_auto_routes_and_explains(aclient: openai.AsyncOpenAI) -> None:
    """model "auto" routes; the reply names the chosen model and carries x-routecore-* headers."""
    raw = await aclient.chat.completions.with_raw_response.create(model="auto", messages=HAIKU)
    resp = raw.parse()
    assert resp.choices[0].message.content and resp.choices[0].finish_reason in ("stop", "length")
    assert resp.model in load_config(None).models
    assert resp.usage is not None and resp.usage.completion_tokens > 0
    h = raw.headers
    assert h["x-routecore-model"] == resp.model and h["x-routecore-request-id"]
    assert float(h["x-routecore-cost-usd"]) > 0 and h["x-routecore-strategy"] == "multi_objective"
    assert "chose" in h["x-routecore-decision"]
    rc = resp.model_extra["routecore"]  # type: ignore[index]
    assert rc["request_id"] == h["x-routecore-request-id"] and rc["decision"]["fallbacks"]


async def test_sync_client_pins_a_registry_model(sclient: openai.OpenAI) -> None:
    """A registry model name pins that model; its configured fallbacks follow it."""
    raw = await asyncio.to_thread(sclient.chat.completions.with_raw_response.create,
                                  model="gpt-4o-mini", messages=HAIKU, max_tokens=64)
    resp = raw.parse()
    assert resp.model == "gpt-4o-mini" and resp.choices[0].message.content
    decision = resp.model_extra["routecore"]["decision"]  # type: ignore[index]
    assert decision["reason"].startswith("pinned")
    assert decision["fallbacks"] == list(load_config(None).models["gpt-4o-mini"].fallbacks)[:3]


async def test_async_stream_with_usage_matches_the_whole_answer(aclient: openai.AsyncOpenAI) -> None:
    """A stream's deltas join into the non-streamed answer; include_usage adds a last usage chunk."""
    whole = await aclient.chat.completions.create(model="gpt-4.1", messages=HAIKU)
    stream = await aclient.chat.completions.create(
        model="gpt-4.1", messages=HAIKU, stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    finish = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert finish.model_extra["routecore"]["cost_usd"] > 0  # type: ignore[index]


async def test_sync_stream_without_usage(sclient: openai.OpenAI) -> None:
    """A sync stream without stream_options ends with its finish chunk and no usage chunk."""
    def run() -> list[Any]:
        return list(sclient.chat.completions.create(model="auto", messages=HAIKU, stream=True))
    chunks = await asyncio.to_thread(run)
    assert all(c.choices for c in chunks) and chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks)


async def test_routecore_options_ride_in_extra_body(aclient: openai.AsyncOpenAI) -> None:
    """`routecore` in extra_body sets the strategy and constraints of the decision."""
    raw = await aclient.chat.completions.with_raw_response.create(
        model="auto", messages=HAIKU,
        extra_body={"routecore": {"strategy": "cost", "constraints": {
            "min_quality": 0.5, "deny_models": ["llama-3.1-8b-instant"]}}})
    assert raw.headers["x-routecore-strategy"] == "cost"
    assert raw.parse().model != "llama-3.1-8b-instant"
    with pytest.raises(openai.BadRequestError) as err:
        await aclient.chat.completions.create(
            model="auto", messages=HAIKU,
            extra_body={"routecore": {"constraints": {"max_cost_usd": 1e-12}}})
    assert err.value.status_code == 400 and err.value.code == "no_model_available"


async def test_models_list_and_retrieve(aclient: openai.AsyncOpenAI) -> None:
    """GET /v1/models lists "auto" then the registry; retrieving an unknown id is a 404."""
    ids = [m.id async for m in aclient.models.list()]
    assert ids[0] == "auto" and set(load_config(None).models) <= set(ids)
    assert (await aclient.models.retrieve("gpt-4o")).owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        await aclient.models.retrieve("no-such-model")


async def test_sdk_errors_have_openai_shape_and_status(aclient: openai.AsyncOpenAI) -> None:
    """Unknown model is a 404 model_not_found; bad values are 400s naming the field."""
    with pytest.raises(openai.NotFoundError) as nf:
        await aclient.chat.completions.create(model="gpt-99", messages=HAIKU)
    assert nf.value.code == "model_not_found" and "gpt-99" in nf.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        await aclient.chat.completions.create(model="auto", messages=HAIKU, temperature=7)
    assert bad.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as bad:
        await aclient.chat.completions.create(model="auto", messages=[])
    assert bad.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as bad:
        await aclient.chat.completions.create(
            model="auto", messages=HAIKU, extra_body={"routecore": {"strategy": "magic"}})
    assert "unknown strategy" in bad.value.message


async def test_http_decision_takes_grpc_feedback(http_app: App) -> None:
    """Both doors share one process state: an HTTP answer's request id takes gRPC Feedback."""
    async with _client(http_app) as client:
        raw = await client.chat.completions.with_raw_response.create(model="auto", messages=HAIKU)
    rid, used = raw.headers["x-routecore-request-id"], raw.parse().model
    async with grpc.aio.insecure_channel(f"127.0.0.1:{http_app.port}") as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        fb = await stub.Feedback(router_pb2.FeedbackRequest(request_id=rid, model=used, score=0.9))
    assert fb.feedback_id


FAILING = {"ok": model("ok"), "broken_error_500": model("broken_error_500"),
           "slow_300": model("slow_300"), "cutter_cut_stream": model("cutter_cut_stream"),
           "limited": model("limited", rpm=1)}


@pytest.fixture
async def failing(tmp_path: Path) -> AsyncIterator[openai.AsyncOpenAI]:
    cfg = make_config(FAILING, resilience={
        "retry": {"max_attempts": 1, "base_delay_ms": 1, "max_delay_ms": 2},
        "rate_limit": {"max_wait_ms": 0}})
    app = await _start(cfg, tmp_path)
    async with _client(app) as client:
        yield client
    await app.stop(0.5)


async def test_upstream_failures_map_to_503_504_429(failing: openai.AsyncOpenAI) -> None:
    """All providers failing is 503, a spent timeout 504, a model at its rate limit 429."""
    c = failing
    with pytest.raises(openai.InternalServerError) as e503:
        await c.chat.completions.create(model="broken_error_500", messages=HAIKU)
    assert e503.value.status_code == 503 and "all providers failed" in e503.value.message
    with pytest.raises(openai.APIStatusError) as e504:
        await c.chat.completions.create(model="slow_300", messages=HAIKU,
                                        extra_body={"routecore": {"timeout_s": 0.05}})
    assert e504.value.status_code == 504
    await c.chat.completions.create(model="limited", messages=HAIKU)
    with pytest.raises(openai.RateLimitError):
        await c.chat.completions.create(model="limited", messages=HAIKU)
    with pytest.raises(openai.InternalServerError):  # before the first chunk: still a status
        await c.chat.completions.create(model="broken_error_500", messages=HAIKU, stream=True)


async def test_stream_cut_after_first_chunk_raises_in_the_sdk(failing: openai.AsyncOpenAI) -> None:
    """A stream that fails after its first chunk ends with an error event the SDK raises."""
    stream = await failing.chat.completions.create(model="cutter_cut_stream", messages=HAIKU, stream=True)
    got: list[str] = []
    with pytest.raises(openai.APIError, match="interrupted"):
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert "".join(got)


async def _raw(app: App, method: str, path: str, body: bytes | None = None,
               ) -> tuple[int, dict[str, Any]]:
    assert app.http is not None
    url = f"http://127.0.0.1:{app.http.port}{path}"
    async with aiohttp.ClientSession() as s, s.request(
            method, url, data=body, headers={"content-type": "application/json"}) as r:
        return r.status, json.loads(await r.read())


async def test_hostile_input_gets_clear_errors_and_the_server_keeps_serving(http_app: App) -> None:
    """Malformed JSON, NaN, wrong types, unknown fields, lone surrogates, huge bodies and odd
    paths get OpenAI errors naming the problem, with the right status, and the next request
    is served."""
    chat = "/v1/chat/completions"

    def body(**kw: Any) -> bytes:
        return json.dumps({"model": "auto", "messages": HAIKU, **kw}).encode()

    cases: list[tuple[bytes, int, str]] = [
        (b"{not json", 400, "not valid JSON"),
        (b'{"model": "auto", "messages": [], "temperature": NaN}', 400, "NaN"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be an object"),
        (json.dumps({"model": "auto", "messages": "hi"}).encode(), 400, "messages"),
        (json.dumps({"model": 5, "messages": HAIKU}).encode(), 400, "model: must be"),
        (body(temperature="hot"), 400, "temperature: must be a number"),
        (body(max_tokens=True), 400, "max_tokens: must be an integer"),
        (body(max_tokens=-3), 400, "max_tokens: must be >= 1"),
        (body(stream="yes"), 400, "stream: must be a boolean"),
        (body(tools=[{"type": "function"}]), 400, "tools: not supported"),
        (body(frobnicate=1), 400, "frobnicate: unknown field"),
        (body(routecore={"constraints": {"max_cost_usd": "x"}}), 400,
         "routecore.constraints.max_cost_usd"),
        (body(routecore={"bogus": 1}), 400, "routecore.bogus: unknown field"),
        (body(messages=[{"role": "user", "content": [{"type": "image_url"}]}]), 400,
         "only text parts"),
        (body(messages=[{"role": "wizard", "content": "hi"}]), 400, "unknown role"),
        (body(messages=[{"role": "user", "content": " "}]), 400, "must not be empty"),
        (b"x" * (4 * 1024 * 1024 + 10), 413, "over the limit"),
        (b'{"model": "auto", "messages": [{"role": "user", "content": "Hi \\ud800 there"}]}',
         400, "messages[0].content: not valid Unicode text (a lone surrogate \\ud800"),
        (b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], '
         b'"routecore": {"tenant": "\\udfff"}}', 400, "routecore.tenant: not valid Unicode"),
    ]
    for raw, status, needle in cases:
        got, doc = await _raw(http_app, "POST", chat, raw)
        assert got == status, (raw[:80], doc)
        assert needle in doc["error"]["message"], (raw[:80], doc)
        assert set(doc["error"]) == {"message", "type", "param", "code"}
    assert (await _raw(http_app, "GET", chat))[0] == 405
    assert (await _raw(http_app, "GET", "/v1/nothing"))[0] == 404
    assert await _raw(http_app, "GET", "/healthz") == (200, {"status": "ok"})
    status, doc = await _raw(http_app, "GET", "/readyz")
    assert status == 200 and doc["status"] == "ready"
    status, doc = await _raw(http_app, "POST", chat, body())
    assert status == 200 and doc["choices"][0]["message"]["content"]
    emoji = b'{"model": "auto", "messages": [{"role": "user", "content": "Hi \\ud83d\\ude00"}]}'
    status, doc = await _raw(http_app, "POST", chat, emoji)  # an escaped pair is one character
    assert status == 200 and doc["choices"][0]["message"]["content"]


async def test_readyz_is_503_while_draining(tmp_path: Path) -> None:
    """/readyz turns 503 as soon as shutdown starts, so balancers drain the HTTP door too."""
    app = await _start(load_config(None), tmp_path)
    assert app.http is not None
    app.http.ready = False  # what App.stop does first
    status, doc = await _raw(app, "GET", "/readyz")
    assert status == 503 and doc["status"] == "not ready"
    await app.stop(0.5)


async def test_http_requests_write_the_same_audit_records(tmp_path: Path) -> None:
    """Chat completions over HTTP (whole, streamed, rejected) write audit records like the
    gRPC Complete and CompleteStream RPCs: decision, served model, cost, status."""
    from routecore.observe.store import documents

    app = App.from_config(load_config(None), access_log=False,
                          feedback_db=str(tmp_path / "feedback.db"))
    app.audit_db = str(tmp_path / "audit.db")
    await app.start("127.0.0.1", 0, http_port=0)
    try:
        async with _client(app) as c:
            whole = await c.chat.completions.create(model="auto", messages=HAIKU, user="u7")
            stream = await c.chat.completions.create(model="gpt-4o", messages=HAIKU, stream=True)
            _ = [chunk async for chunk in stream]
            with pytest.raises(openai.BadRequestError):
                await c.chat.completions.create(model="auto", messages=HAIKU, temperature=9)
    finally:
        await app.stop(0.5)
    docs = [d async for d in documents(str(tmp_path / "audit.db"))]
    assert [(d["rpc"], d["status"]) for d in docs] == [
        ("Complete", "OK"), ("CompleteStream", "OK"), ("Complete", "INVALID_ARGUMENT")]
    assert docs[0]["served_model"] == whole.model and docs[0]["user"] == "u7"
    assert docs[0]["cost_usd"] > 0 and docs[0]["candidates"]
    assert docs[1]["served_model"] == "gpt-4o" and docs[1]["attempts"]
    assert "temperature" in docs[2]["error"]


ACME, NARROW = "rk-acme-http-1", "rk-narrow-http-2"


@pytest.fixture
async def keyed(tmp_path: Path) -> AsyncIterator[App]:
    """Auth on (two acme keys, one narrowed to two models) and a small acme daily budget."""
    import hashlib
    from importlib import resources

    import yaml

    from routecore.config import parse_config

    def sha(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["auth"] = {"keys": [
        {"id": "acme-1", "sha256": sha(ACME), "tenant": "acme"},
        {"id": "acme-narrow", "sha256": sha(NARROW), "tenant": "acme",
         "models": ["gpt-4o-mini", "gpt-4.1-nano"]}]}
    raw["budgets"] = {"tenants": {"acme": {"usd_per_day": 0.002}}}
    app = await _start(parse_config(raw), tmp_path)
    yield app
    await app.stop(0.5)


def _keyed(app: App, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=_base(app), api_key=key, max_retries=0)


async def test_api_keys_are_the_grpc_keys(keyed: App) -> None:
    """No key or a wrong key is 401; a key's model allow list narrows routing, pinning and
    /v1/models (403 outside it); a key cannot act for another tenant."""
    async with _keyed(keyed, "rk-wrong") as wrong, _keyed(keyed, NARROW) as narrow, \
            _keyed(keyed, ACME) as acme:
        with pytest.raises(openai.AuthenticationError) as no:
            await wrong.chat.completions.create(model="auto", messages=HAIKU)
        assert "unknown API key" in no.value.message and "rk-wrong" not in no.value.message
        status, doc = await _raw(keyed, "POST", "/v1/chat/completions", json.dumps(
            {"model": "auto", "messages": HAIKU}).encode())
        assert status == 401 and doc["error"]["type"] == "authentication_error"
        r = await narrow.chat.completions.create(model="auto", messages=HAIKU)
        assert r.model in ("gpt-4o-mini", "gpt-4.1-nano")
        ids = [m.id async for m in narrow.models.list()]
        assert ids[0] == "auto" and sorted(ids[1:]) == ["gpt-4.1-nano", "gpt-4o-mini"]
        with pytest.raises(openai.PermissionDeniedError):
            await narrow.chat.completions.create(model="gpt-4o", messages=HAIKU)
        with pytest.raises(openai.PermissionDeniedError):
            await acme.chat.completions.create(model="auto", messages=HAIKU,
                                               extra_body={"routecore": {"tenant": "globex"}})
    assert (await _raw(keyed, "GET", "/healthz"))[0] == 200  # probes need no key


async def test_budget_exhausted_is_402(keyed: App) -> None:
    """The tenant's budget (shared with gRPC) refuses over HTTP with 402 insufficient_quota,
    saying what is left and when it resets."""
    async with _keyed(keyed, ACME) as acme:
        with pytest.raises(openai.APIStatusError) as info:
            for _ in range(200):
                await acme.chat.completions.create(model="gemini-2.5-pro", messages=HAIKU,
                                                   max_tokens=64)
    err = info.value
    assert err.status_code == 402 and err.code == "budget_exceeded"
    assert "budget exhausted: tenant 'acme'" in err.message and "resets at" in err.message


async def test_one_access_line_per_request_with_model_and_cost(tmp_path: Path) -> None:
    """Each HTTP request logs one line with route, status, latency, model, tokens and cost;
    a stream cut after its start logs what cut it."""
    import logging

    import structlog

    logging.getLogger("routecore.http").setLevel(logging.INFO)  # as `serve` configures it
    cfg = make_config({"ok": model("ok"), "cutter_cut_stream": model("cutter_cut_stream")})
    app = App.from_config(cfg, feedback_db=str(tmp_path / "feedback.db"))
    await app.start("127.0.0.1", 0, http_port=0)
    try:
        with structlog.testing.capture_logs() as logs:
            async with _client(app) as c:
                await c.chat.completions.create(model="ok", messages=HAIKU)
                stream = await c.chat.completions.create(model="cutter_cut_stream",
                                                         messages=HAIKU, stream=True)
                with pytest.raises(openai.APIError):
                    _ = [chunk async for chunk in stream]
    finally:
        logging.getLogger("routecore.http").setLevel(logging.NOTSET)
        await app.stop(0.5)
    lines = [e for e in logs if e["event"] == "http"]
    assert len(lines) == 2, lines
    ok, cut = lines
    assert ok["status"] == 200 and ok["model"] == "ok" and ok["cost_usd"] > 0
    assert ok["output_tokens"] > 0 and ok["latency_ms"] > 0 and ok["request_id"]
    assert cut["status"] == 200 and "interrupted" in cut["error"]


async def test_a_client_that_leaves_is_recorded_as_cancelled(tmp_path: Path) -> None:
    """A client that disconnects mid-request cancels the upstream call; the audit record
    says CANCELLED, not OK."""
    from routecore.observe.store import documents

    app = App.from_config(make_config({"slow_2000": model("slow_2000")}), access_log=False,
                          feedback_db=str(tmp_path / "feedback.db"))
    app.audit_db = str(tmp_path / "audit.db")
    await app.start("127.0.0.1", 0, http_port=0)
    try:
        with pytest.raises(openai.APITimeoutError):
            async with openai.AsyncOpenAI(base_url=_base(app), api_key="unused", max_retries=0,
                                          timeout=0.3) as c:
                await c.chat.completions.create(model="slow_2000", messages=HAIKU)
        await asyncio.sleep(0.2)  # the server notices the closed connection
    finally:
        await app.stop(0.5)
    docs = [d async for d in documents(str(tmp_path / "audit.db"))]
    assert [(d["rpc"], d["status"]) for d in docs] == [("Complete", "CANCELLED")]


async def test_a_client_leaving_mid_stream_is_cancelled_cleanly(tmp_path: Path) -> None:
    """A client that closes a stream after its first chunk ends the upstream stream; the
    server logs no error, records CANCELLED and keeps serving."""
    from routecore.observe.store import documents

    app = App.from_config(make_config({"paced": model("paced", sim={"tokens_per_s": 50})}),
                          access_log=False, feedback_db=str(tmp_path / "feedback.db"))
    app.audit_db = str(tmp_path / "audit.db")
    await app.start("127.0.0.1", 0, http_port=0)
    try:
        body = json.dumps({"model": "paced", "messages": HAIKU, "stream": True}).encode()
        assert app.http is not None
        async with aiohttp.ClientSession() as s:
            async with s.post(f"http://127.0.0.1:{app.http.port}/v1/chat/completions",
                              data=body) as r:
                assert r.status == 200
                await r.content.readline()  # the first chunk, then hang up
            await asyncio.sleep(0.3)
        async with _client(app) as c:  # still serving
            assert (await c.chat.completions.create(model="paced", messages=HAIKU)).model
    finally:
        await app.stop(0.5)
    docs = [d async for d in documents(str(tmp_path / "audit.db"))]
    assert [(d["rpc"], d["status"]) for d in docs] == [
        ("CompleteStream", "CANCELLED"), ("Complete", "OK")]
