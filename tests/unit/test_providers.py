"""Providers: error mapping, Retry-After, the simulated upstream, HTTP providers, secrets."""

from __future__ import annotations

import contextlib
import email.utils
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import structlog
from aiohttp import web
from conftest_complete import make_config, model, router_for

from routecore.calling.completion import Completer
from routecore.calling.providers import AnthropicProvider, HttpPool, OpenAIProvider, SimEngine
from routecore.calling.providers.base import (
    ProviderCall,
    StreamChunk,
    error_from_status,
    join_url,
    parse_retry_after,
)
from routecore.calling.providers.redaction import redact
from routecore.calling.providers.sim_server import SimServer
from routecore.calling.providers.simulated import (
    REFUSAL,
    SimulatedProvider,
    canonical_answer,
    validate_sim,
)
from routecore.calling.resilience import RetryConfig, RetryPolicy
from routecore.calling.types import CompletionRequest
from routecore.config import Endpoint
from routecore.domain import Message, RouteRequest
from routecore.errors import AllProvidersFailed, ProviderError

SECRET = "sk-test-THIS-MUST-NEVER-BE-LOGGED-1234"


def _call(model_id: str, prompt: str = "Write a haiku about autumn rain.",
          **kw: object) -> ProviderCall:
    return ProviderCall(model=model_id, model_id=model_id, messages=(Message("user", prompt),),
                        max_output_tokens=200, **kw)  # type: ignore[arg-type]


async def _drain(it: AsyncIterator[StreamChunk]) -> list[StreamChunk]:
    return [c async for c in it]


def test_http_errors_map_to_provider_errors() -> None:
    """429/5xx are retryable, context overflow and other 4xx are not, each with its kind."""
    e = error_from_status(429, '{"error": {"message": "slow down"}}', {"retry-after": "3"}, "x")
    assert (e.kind, e.retryable, e.retry_after, e.http_status) == ("rate_limit", True, 3.0, 429)
    e = error_from_status(503, "unavailable", {}, "x")
    assert (e.kind, e.retryable) == ("server", True)
    e = error_from_status(400, '{"error": {"code": "context_length_exceeded", "message": "m"}}',
                          {}, "x")
    assert (e.kind, e.retryable) == ("context_overflow", False)
    e = error_from_status(401, "nope", {}, "x")
    assert (e.kind, e.retryable) == ("auth", False)
    e = error_from_status(400, '{"error": {"message": "bad field"}}', {}, "x")
    assert (e.kind, e.retryable) == ("bad_request", False)


def test_retry_after_parsing() -> None:
    """Retry-After is read as seconds, as an HTTP date, or from retry-after-ms first."""
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after({"retry-after": when}) or 0) <= 31
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None


def test_join_url_keeps_an_explicit_version() -> None:
    """A base URL gets /v1 unless it already ends in a /vN segment."""
    assert join_url("http://h:1", "chat/completions") == "http://h:1/v1/chat/completions"
    assert join_url("http://h/v1/", "messages") == "http://h/v1/messages"
    assert join_url("https://openrouter.ai/api/v1", "chat/completions").endswith(
        "/api/v1/chat/completions")


def test_api_key_is_read_at_construction_and_never_in_repr(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The key comes from the endpoint's env var when the provider is built; reprs redact it."""
    monkeypatch.setenv("RC_TEST_KEY", SECRET)
    ep = Endpoint("up", "openai", "http://127.0.0.1:9", "RC_TEST_KEY", 5.0, 4)
    pool = HttpPool()
    p = OpenAIProvider(ep, pool)
    a = AnthropicProvider(Endpoint("an", "anthropic", "http://127.0.0.1:9", "RC_TEST_KEY", 5, 4),
                          pool)
    monkeypatch.setenv("RC_TEST_KEY", "changed-later")
    assert p._headers["authorization"] == f"Bearer {SECRET}"
    assert a._headers["x-api-key"] == SECRET
    for text in (repr(p), str(p), repr(a)):
        assert SECRET not in text and "redacted" in text
    assert SECRET not in repr(pool)


async def test_secret_never_reaches_logs_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing call with a key set logs and raises nothing that contains the key."""
    monkeypatch.setenv("RC_TEST_KEY", SECRET)
    cfg = make_config({"m": model("m", endpoint="dead")},
                      endpoints={"dead": {"kind": "openai", "base_url": "http://127.0.0.1:9",
                                          "api_key_env": "RC_TEST_KEY", "timeout_s": 2}})
    c = Completer(cfg, router_for("m"))
    with structlog.testing.capture_logs() as logs, pytest.raises(AllProvidersFailed) as err:
        await c.complete(CompletionRequest(RouteRequest(prompt="hi")))
    await c.aclose()
    assert SECRET not in str(logs) and SECRET not in str(err.value)
    assert SECRET not in repr(c.providers) and SECRET not in repr(err.value.attempts)


def test_sim_answers_are_deterministic_and_quality_dependent() -> None:
    """Same prompt and model give the same answer; a strong model answers well more often."""
    cfg = make_config({"weak": model("weak", quality=0.3), "strong": model("strong", quality=0.97)})
    eng = SimEngine(cfg)
    prompts = [f"Design the architecture of system number {i} step by step" for i in range(40)]
    a1 = [eng.answer(_call("weak", p), cfg.models["weak"]).text for p in prompts]
    a2 = [SimEngine(cfg).answer(_call("weak", p), cfg.models["weak"]).text for p in prompts]
    assert a1 == a2
    good_w = sum(t == canonical_answer(p) for t, p in zip(a1, prompts, strict=True))
    strong = [eng.answer(_call("strong", p), cfg.models["strong"]).text for p in prompts]
    good_s = sum(t == canonical_answer(p) for t, p in zip(strong, prompts, strict=True))
    assert good_s > good_w + 10


def test_sim_answers_are_readable_sentences() -> None:
    """Answers are sentences about the prompt's own words, not random vocabulary."""
    cfg = make_config({"m": model("m", quality=0.97)})
    text = SimEngine(cfg).answer(_call("m", "Write a Python function that merges two sorted "
                                            "lists."), cfg.models["m"]).text
    sentences = [x for x in re.split(r"(?<=[.;])\s+", text) if x]
    assert len(sentences) >= 2 and all(x[0].isupper() and x[-1] in ".;" for x in sentences)
    assert "sorted lists" in text and "Python function" in text


def test_sim_config_is_validated_with_exact_paths() -> None:
    """Unknown sim keys, out-of-range rates and p95 < p50 are reported per model path."""
    cfg = make_config({"m": model("m", sim={"error_rate": 2, "wat": 1,
                                            "latency_ms": {"p50": 10, "p95": 5}})})
    problems = validate_sim(cfg.models)
    assert "models.m.sim.error_rate: must be <= 1" in problems
    assert any(p.startswith("models.m.sim.wat: unknown field") for p in problems)
    assert "models.m.sim.latency_ms.p95: must be >= latency_ms.p50" in problems


async def test_in_process_sim_magic_names() -> None:
    """Magic model names script failures: flaky_N, error_429, refuse, empty, cut_stream."""
    cfg = make_config({"m": model("m", sim={"retry_after_s": 0.5})})
    sim = SimulatedProvider(Endpoint("sim", "simulated", "", "", 5, 4), SimEngine(cfg))
    for _ in range(2):
        with pytest.raises(ProviderError) as e:
            await sim.complete(_call("flaky_2"), 1)
        assert e.value.kind == "server"
    assert (await sim.complete(_call("flaky_2"), 1)).text
    with pytest.raises(ProviderError) as e:
        await sim.complete(_call("error_429"), 1)
    assert e.value.kind == "rate_limit" and e.value.retry_after == 1.0
    assert (await sim.complete(_call("refuse"), 1)).text == REFUSAL
    assert (await sim.complete(_call("empty"), 1)).text == ""
    with pytest.raises(ProviderError) as e:
        await _drain(sim.stream(_call("cut_stream"), 1))
    assert e.value.kind == "stream_cut"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_http_providers_against_the_sim_server(kind: str) -> None:
    """Both HTTP providers complete, stream with usage, and map 429/500/overflow/cut streams."""
    cfg = make_config({"m": model("m")})
    async with SimServer(cfg) as srv:
        pool = HttpPool()
        ep = Endpoint("up", kind, srv.base_url, "", 5.0, 8)
        p = OpenAIProvider(ep, pool) if kind == "openai" else AnthropicProvider(ep, pool)
        r = await p.complete(_call("m", logprobs=True), 2.0)
        assert r.text.endswith(".") and r.usage and r.usage.output_tokens
        if kind == "openai":
            assert r.logprobs is not None and len(r.logprobs) == r.usage.output_tokens
        chunks = await _drain(p.stream(_call("m"), 2.0))
        assert "".join(c.delta for c in chunks) == r.text
        assert chunks[-1].usage == r.usage and chunks[-1].finish_reason
        for name, expect in (("error_429", "rate_limit"), ("error_500", "server"),
                             ("context_overflow", "context_overflow")):
            with pytest.raises(ProviderError) as e:
                await p.complete(_call(name), 2.0)
            assert e.value.kind == expect
            with pytest.raises(ProviderError) as e:
                await _drain(p.stream(_call(name), 2.0))
            assert e.value.kind == expect
        got: list[str] = []
        with pytest.raises(ProviderError) as e:
            async for c in p.stream(_call("cut_stream"), 2.0):
                got.append(c.delta)
        assert e.value.kind == "stream_cut" and len(got) == 3
        await pool.aclose()


async def test_connection_refused_is_a_retryable_connection_error() -> None:
    """A dead upstream maps to ProviderError(kind=connection, retryable=True)."""
    pool = HttpPool()
    p = OpenAIProvider(Endpoint("dead", "openai", "http://127.0.0.1:9", "", 2.0, 4), pool)
    with pytest.raises(ProviderError) as e:
        await p.complete(_call("m"), 1.0)
    assert e.value.kind == "connection" and e.value.retryable
    await pool.aclose()


def test_retry_after_edge_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    """A zone-less HTTP date is read as UTC, non-finite numbers are ignored, past dates give 0."""
    soon = time.time() + 30
    naive = email.utils.formatdate(soon)  # "... -0000": a date that names no zone
    assert naive.endswith("-0000")
    monkeypatch.setenv("TZ", "America/New_York")  # local time must not be assumed
    time.tzset()
    try:
        assert 25 <= (parse_retry_after({"retry-after": naive}) or 0) <= 31
    finally:
        monkeypatch.undo()
        time.tzset()
    assert parse_retry_after({"retry-after": "inf"}) is None
    assert parse_retry_after({"retry-after": "nan"}) is None
    assert parse_retry_after({"retry-after-ms": "inf", "retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": email.utils.formatdate(soon - 600, usegmt=True)}) == 0
    assert parse_retry_after({"retry-after": "-3"}) == 0.0


def test_429_without_retry_after_is_retryable_with_plain_backoff() -> None:
    """A 429 with no Retry-After header is retryable, carries no wait, and backs off normally."""
    e = error_from_status(429, "{}", {}, "x")
    assert (e.kind, e.retryable, e.retry_after) == ("rate_limit", True, None)
    pol = RetryPolicy(RetryConfig(max_attempts=1, base_delay_ms=100, max_delay_ms=100))
    delay = pol.delay(0, e)
    assert delay is not None and 0.0 <= delay <= 0.1


@contextlib.asynccontextmanager
async def _upstream(kind: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                    api_key_env: str = "") -> AsyncIterator[OpenAIProvider | AnthropicProvider]:
    """A `kind` provider pointed at a one-handler HTTP server on a free port."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    app.router.add_post("/v1/messages", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    pool = HttpPool()
    ep = Endpoint("up", kind, f"http://127.0.0.1:{runner.addresses[0][1]}", api_key_env, 5.0, 4)
    try:
        yield OpenAIProvider(ep, pool) if kind == "openai" else AnthropicProvider(ep, pool)
    finally:
        await pool.aclose()
        await runner.cleanup()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_api_key_echoed_by_the_upstream_is_redacted(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An upstream 401 body that echoes the API key yields an error message with the key masked."""
    async def reject(request: web.Request) -> web.Response:
        sent = request.headers.get("authorization", "") or request.headers.get("x-api-key", "")
        return web.json_response({"error": {"message": f"Incorrect API key provided: {sent}"}},
                                 status=401)

    monkeypatch.setenv("RC_TEST_KEY", SECRET)
    async with _upstream(kind, reject, "RC_TEST_KEY") as p:
        for attempt in (p.complete(_call("m"), 2.0), _drain(p.stream(_call("m"), 2.0))):
            with pytest.raises(ProviderError) as e:
                await attempt
            assert e.value.kind == "auth" and "<redacted>" in e.value.message
            assert SECRET not in e.value.message and SECRET not in str(e.value)


def _fragments(secret: str, n: int = 8) -> set[str]:
    low = secret.lower()
    return {low[i:i + n] for i in range(len(low) - n + 1)}


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("echo", [
    lambda k: "x" * 180 + k,  # straddles the old 200-character detail cut
    lambda k: "x" * 470 + k,  # straddles the message cut
    lambda k: f"Incorrect API key provided: {k.upper()}",
    lambda k: f"Incorrect API key provided: {k[:14]}****{k[-4:]}",
    lambda k: f"key ...{k[10:30].swapcase()}... rejected",
])
async def test_partial_cut_or_recased_key_is_redacted(
        kind: str, echo: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    """No 8-character piece of the key, in any case, survives in the error message, wherever
    the upstream puts it and however the message is cut."""
    async def reject(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": echo(SECRET)}}, status=401)

    monkeypatch.setenv("RC_TEST_KEY", SECRET)
    async with _upstream(kind, reject, "RC_TEST_KEY") as p:
        for attempt in (p.complete(_call("m"), 2.0), _drain(p.stream(_call("m"), 2.0))):
            with pytest.raises(ProviderError) as e:
                await attempt
            low = e.value.message.lower()
            assert not any(f in low for f in _fragments(SECRET)), e.value.message
            assert len(e.value.message) <= 510


def test_redact_masks_fragments_and_cuts_after() -> None:
    """redact masks the key whole, re-cased or in 8+ character pieces, leaves other text, and
    cuts only after masking."""
    key = "sk-proj-ABCdef0123456789xyz"
    assert redact(f"bad {key} here", key, 100) == "bad <redacted> here"
    assert redact(f"bad {key.lower()}!", key, 100) == "bad <redacted>!"
    assert redact("prefix sk-proj-ABCd**** end", key, 100) == "prefix <redacted>**** end"
    assert redact("nothing secret (sk-1)", key, 100) == "nothing secret (sk-1)"
    cut = redact("y" * 95 + key, key, 100)
    assert cut == "y" * 95 + "<reda..." and "sk-pr" not in cut
    assert redact("z" * 50_000 + key, key, 20) == "z" * 20 + "..."


@pytest.mark.parametrize(("kind", "event"), [
    ("openai", b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\ndata: [1, 2]\n\n'),
    ("openai", b'data: {"choices": [{"delta": "oops"}]}\n\n'),
    ("anthropic", b'event: message_start\ndata: {"type": "message_start", "message": '
                  b'{"usage": {"input_tokens": "many"}}}\n\n'),
    ("anthropic", b'event: content_block_delta\ndata: ["not", "an", "object"]\n\n'),
])
async def test_malformed_stream_event_is_a_stream_cut(kind: str, event: bytes) -> None:
    """A well-formed SSE line carrying a JSON payload of the wrong shape raises
    ProviderError(kind=stream_cut), never a raw TypeError/AttributeError/ValueError."""
    async def odd(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(event)
        await resp.write_eof()
        return resp

    async with _upstream(kind, odd) as p:
        with pytest.raises(ProviderError) as e:
            await _drain(p.stream(_call("m"), 2.0))
    assert e.value.kind == "stream_cut" and "malformed" in e.value.message


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_malformed_complete_body_is_a_server_error(kind: str) -> None:
    """A 200 response whose JSON has the wrong shape (bad usage, logprob) is a retryable
    ProviderError(kind=server), not a raw exception."""
    body = ({"choices": [{"message": {"content": "x"}, "logprobs": {"content": [{"logprob": "?"}]}}]}
            if kind == "openai" else
            {"content": [{"type": "text", "text": "x"}], "usage": {"input_tokens": "many"}})

    async def odd(request: web.Request) -> web.Response:
        return web.json_response(body)

    async with _upstream(kind, odd) as p:
        with pytest.raises(ProviderError) as e:
            await p.complete(_call("m", logprobs=True), 2.0)
    assert (e.value.kind, e.value.retryable) == ("server", True)


def test_sim_engine_state_is_bounded() -> None:
    """The simulated upstream keeps per-model state for at most MAX_MODELS model names."""
    eng = SimEngine(None)
    eng.MAX_MODELS = 8
    for i in range(50):
        eng.plan(_call(f"client-model-{i}"))
    assert len(eng._state) == 8 and "client-model-49" in eng._state
