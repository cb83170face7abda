"""The cache's request policy: the semantic guard, the config, the audit record and metrics."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import replace
from typing import Any

import pytest
from conftest_complete import decision, make_config, model

from routecore.calling.cache import CacheConfig, ResponseCache, check_request, parse_cache
from routecore.calling.cache_guard import extract, passes
from routecore.calling.types import CompletionRequest, CompletionResult, Usage
from routecore.domain import Message, RouteRequest
from routecore.errors import InvalidRequest
from routecore.observe.record import AuditRecord
from routecore.routing.embedding import StaticEmbedder


@pytest.fixture(scope="module")
def embed() -> Any:
    return StaticEmbedder.shipped().embed


@pytest.mark.parametrize(("a", "b"), [
    ("How do I reverse a list in Python?", "How can I reverse a Python list?"),
    ("Explain photosynthesis simply", "Give a simple explanation of photosynthesis"),
    ("Summarize the plot of Hamlet", "Give me a summary of the plot of Hamlet"),
    ("What is the capital of France?", "what is the capital of france"),
    ("Paris is the capital of which country?", "Which country has Paris as its capital?"),
    ("Why isn't the sky green?", "Why is the sky not green?"),
    ("Which is right?\nA. cat\nB. dog", "which is right?\na. cat\nb. dog"),
    ("A dog barks at night. Why?", "Why does a dog bark at night?"),
    ("I think I lost my keys, what do I do?", "What do I do, I think I lost my keys?"),
])
def test_paraphrases_pass_the_guard(embed: Any, a: str, b: str) -> None:
    """Rewordings with the same numbers, names, negations and content words pass."""
    assert passes(extract(a), extract(b), embed) and passes(extract(b), extract(a), embed)


@pytest.mark.parametrize(("a", "b"), [
    ("Convert 30 miles to km", "Convert 50 miles to km"),
    ("Convert 30 miles to km", "Convert 30.5 miles to km"),
    ("Convert thirty miles to km", "Convert fifty miles to km"),
    ("Is Paris in France?", "Is Paris not in France?"),
    ("Can I mix bleach with vinegar?", "Can I never mix bleach with vinegar?"),
    ("What is the capital of France?", "What is the capital of Spain?"),
    ('Who wrote "War and Peace"?', 'Who wrote "Anna Karenina"?'),
    ("How do I sort a dictionary by value in Python?",
     "How do I sort a dictionary by key in Python?"),
    ("Should I buy Tesla stock?", "Should I sell Tesla stock?"),
    ("Is option B correct?", "Is option C correct?"),
    ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?"),
    ("Explain plan A to me.", "Explain plan B to me."),
    ("Write a poem about the sea", "Write a poem about the mountains"),
])
def test_a_different_number_negation_name_or_word_fails_the_guard(
        embed: Any, a: str, b: str) -> None:
    """Any difference in numbers, negations, names, quotes or a content word fails, both ways."""
    assert not passes(extract(a), extract(b), embed)
    assert not passes(extract(b), extract(a), embed)


@pytest.mark.timeout(60)  # catastrophic regex backtracking would run for hours, not seconds
def test_guard_extraction_is_bounded_on_hostile_text(embed: Any) -> None:
    """A prompt of names, numbers and quotes (4,000 and 40,000 characters) is read in one
    pass: no backtracking blow-up (bench/cache.py measures its speed; no timing here)."""
    for n in (4_000, 40_000):
        text = ('"a" 1 Zed ' * (n // 10))[:n]
        g = extract(text)
        assert "1" in g[0] and "zed" in g[2]


def _parse(node: Any) -> tuple[CacheConfig, list[str]]:
    problems: list[str] = []
    cfg = parse_cache(node, make_config({"m": model("m")}), problems)
    return cfg, problems


def test_cache_config_defaults_and_errors_name_the_field() -> None:
    """No section is no cache; each bad key is named by its path."""
    assert not _parse(None)[0].enabled
    cfg, problems = _parse({"exact": {}, "semantic": {"categories": ["code"]}})
    assert not problems and cfg.exact_ttl_s == 3600 and cfg.semantic_ttl_s == 3600
    assert cfg.categories == frozenset({"code"})
    assert _parse({"exact": {"ttl_s": 600}})[0].semantic_ttl_s == 0
    _, problems = _parse({"exact": {"ttl_s": -1}, "semantic": {"threshold": "high"},
                          "fuzzy": {}})
    assert "cache.exact.ttl_s: must be >= 1" in problems
    assert "cache.semantic.threshold: must be a float, got str" in problems
    assert any(p.startswith("cache.fuzzy: unknown field") for p in problems)


@pytest.mark.parametrize(("policy", "age", "needle"), [
    ("sometimes", 0, "cache: must be one of default, bypass, refresh, allow, got 'sometimes'"),
    ("BYPASS", 0, "cache: must be one of"),
    ("", -1, "cache_max_age_s: must be in [0, "),
    ("", 10**12, "cache_max_age_s: must be in [0, "),
])
def test_bad_request_options_name_the_field(policy: str, age: int, needle: str) -> None:
    """A policy outside the four, or a negative or absurd max age, is InvalidRequest."""
    with pytest.raises(InvalidRequest) as info:
        check_request(policy, age)
    assert info.value.message.startswith(needle)


async def test_an_answer_is_keyed_on_every_parameter_that_changes_it() -> None:
    """Another max tokens, json mode, pinned model, system prompt or routed model misses."""
    cache = ResponseCache(CacheConfig(exact_ttl_s=60), None)
    base = CompletionRequest(RouteRequest(messages=(Message("system", "Be terse."),
                                                    Message("user", "Define entropy."))))
    d = decision("m1")
    look = await cache.lookup(base, d)
    cache.store(look, CompletionResult("H = -sum p log p", "m1", "sim", Usage(5, 7), 0.01, 1.0,
                                       (), finish_reason="stop"), "H = -sum p log p")
    assert (await cache.lookup(base, d)).outcome == "exact"
    variants = [
        CompletionRequest(base.route, max_output_tokens=50),
        CompletionRequest(base.route, json_mode=True),
        CompletionRequest(base.route, cascade=True),
        CompletionRequest(base.route, ensemble_size=2),
        CompletionRequest(RouteRequest(messages=(Message("system", "Be verbose."),
                                                 Message("user", "Define entropy.")))),
        CompletionRequest(RouteRequest(messages=base.route.messages, model="m1")),
        CompletionRequest(RouteRequest(messages=base.route.messages, tenant="globex")),
    ]
    for v in variants:
        assert (await cache.lookup(v, d)).outcome == "miss", v
    assert (await cache.lookup(base, decision("m2"))).outcome == "miss"


def test_a_hit_lands_in_the_audit_record_and_metrics() -> None:
    """The audit record says the cache outcome and saved USD; metrics count both."""
    from prometheus_client import CollectorRegistry

    from routecore.observe.metrics import Metrics
    from routecore.observe.settings import parse_metrics
    from routecore.server.records import Trace, build_record

    cfg = make_config({"m1": model("m1")})
    req = CompletionRequest(RouteRequest(prompt="hi", tenant="acme"))
    trace = Trace(req)
    trace.result = CompletionResult("hello", "m1", "sim", Usage(), 0.0, 1.0, (),
                                    decision=decision("m1"), cache_hit="semantic",
                                    saved_usd=0.25)
    rec = build_record(("Complete", "r1", 0.0, 0.001, "OK", None, trace), 0.0, False)
    assert isinstance(rec, AuditRecord)
    assert rec.cache == "semantic" and rec.features["cache_saved_usd"] == 0.25
    registry = CollectorRegistry()
    metrics = Metrics(parse_metrics(cfg), cfg, registry)
    miss = AuditRecord(ts=1.0, request_id="r2", rpc="Complete", status="OK", cache="miss",
                       served_model="m1", tenant="acme", cost_usd=0.1)
    metrics.observe([rec, miss, AuditRecord(ts=1.0, request_id="r3", rpc="Complete",
                                            status="OK", cache="weird")])
    get = registry.get_sample_value
    assert get("routecore_cache_requests_total", {"outcome": "semantic"}) == 1
    assert get("routecore_cache_requests_total", {"outcome": "miss"}) == 1
    assert get("routecore_cache_requests_total", {"outcome": "other"}) == 1
    assert get("routecore_cache_saved_usd_total", {"model": "m1", "tenant": "acme"}) == 0.25


async def test_semantic_hits_only_in_allowed_categories() -> None:
    """A paraphrase hits in a listed category and misses in another; exact still hits."""
    cache = ResponseCache(CacheConfig(exact_ttl_s=60, semantic_ttl_s=60, threshold=0.85,
                                      categories=frozenset({"code"})), None)
    first = CompletionRequest(RouteRequest(prompt="How do I reverse a list in Python?"))
    para = CompletionRequest(RouteRequest(prompt="How can I reverse a Python list?"))
    for category, expected in (("code", "semantic"), ("qa", "miss")):
        d = decision("m1", category=category)
        look = await cache.lookup(first, d)
        cache.store(look, CompletionResult("Use reversed().", "m1", "sim", Usage(5, 7), 0.01,
                                           1.0, (), finish_reason="stop"), "Use reversed().")
        assert (await cache.lookup(para, d)).outcome == expected
        assert (await cache.lookup(first, d)).outcome == "exact"


async def test_a_redis_outage_is_a_miss_not_an_error() -> None:
    """With Redis down a lookup misses and a store is dropped: the request is still served."""
    from routecore.state import RedisBackend, StateConfig

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = RedisBackend(StateConfig(backend="redis", redis_url=f"redis://127.0.0.1:{port}/0",
                                       timeout_s=0.2))
    await backend.start()
    try:
        cache = ResponseCache(CacheConfig(exact_ttl_s=60, semantic_ttl_s=60), backend)
        req = CompletionRequest(RouteRequest(prompt="Define entropy."))
        look = await cache.lookup(req, decision("m1"))
        assert look.outcome == "miss" and look.answer is None
        cache.store(look, CompletionResult("S = k log W", "m1", "sim", Usage(1, 1), 0.01, 1.0,
                                           (), finish_reason="stop"), "S = k log W")
        await cache.aclose()
        assert (await cache.lookup(req, decision("m1"))).outcome == "miss"
    finally:
        await backend.aclose()


async def test_users_on_another_rollout_version_never_share_an_answer() -> None:
    """During a staged rollout an answer made by one version never serves a user of the
    other, while users on the same version share it."""
    from routecore.calling.completion import Completer

    raw = {"provider": "sim", "versions": {"v1": {"model_id": "m-v1"},
                                           "v2": {"model_id": "m-v2"}},
           "pinned": "v1", "price": {"input": 1.0, "output": 2.0}, "context_window": 10_000,
           "quality": {"default": 0.8}, "latency": {"p50_ms": 10, "p95_ms": 20}}
    cfg = make_config({"m": raw})
    cfg = replace(cfg, extra={**cfg.extra, "cache": {"exact": {}},
                                 "rollout": {"model": "m", "to": "v2", "share": 0.5}})
    completer = Completer(cfg, lambda r: decision("m", request_id="r"))
    try:
        users = [f"u{i}" for i in range(40)]
        side = {u: completer.rollouts.version_for(
            CompletionRequest(RouteRequest(prompt="x", user=u)), decision("m")) for u in users}
        a = next(u for u in users if side[u] == "m-v1")
        b = next(u for u in users if side[u] == "m-v2")
        a2 = next(u for u in users if side[u] == "m-v1" and u != a)
        ask = "Define entropy."
        first = await completer.complete(CompletionRequest(RouteRequest(prompt=ask, user=a)))
        assert first.cache_hit == "miss"
        other = await completer.complete(CompletionRequest(RouteRequest(prompt=ask, user=b)))
        same = await completer.complete(CompletionRequest(RouteRequest(prompt=ask, user=a2)))
        assert (other.cache_hit, same.cache_hit) == ("miss", "exact")
    finally:
        await completer.aclose()


async def test_a_flight_lands_when_its_task_ends_or_moves_on() -> None:
    """Followers wake when the leader's task ends (an RPC that failed) or when that task
    leads another key (a long-lived task whose last call failed), not after FOLLOW_S."""
    from routecore.calling.cache_flights import Flights

    flights = Flights()
    led = asyncio.Event()
    go = asyncio.Event()

    hold = asyncio.Event()

    async def leader(keys: list[tuple[str, str]], stay: bool = False) -> None:
        for key in keys:
            assert flights.lead(key) is None
            led.set()
            await go.wait()
        if stay:  # a long-lived task: it does not end after its calls
            await hold.wait()

    async def follower(key: tuple[str, str]) -> float:
        await led.wait()
        event = flights.lead(key)
        assert event is not None
        t0 = time.perf_counter()
        await flights.follow(event, remaining_s=None)
        return time.perf_counter() - t0

    k1, k2 = ("acme", "k1"), ("acme", "k2")
    task = asyncio.create_task(leader([k1]))
    waiting = asyncio.create_task(follower(k1))
    await asyncio.sleep(0.05)
    go.set()  # the leader's task ends without storing anything
    assert await waiting < 1.0 and len(flights) == 0
    await task
    led.clear()
    go.clear()
    moving = asyncio.create_task(leader([k1, k2], stay=True))
    waiting = asyncio.create_task(follower(k1))
    await asyncio.sleep(0.05)
    go.set()  # the same task leads k2 next, and lives on: k1's followers wake
    assert await waiting < 1.0 and not moving.done() and len(flights) == 1
    hold.set()
    await moving
    assert len(flights) == 0
