"""Response cache storage: one contract over both backends, the semantic log, the vector index."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from routecore.state.cache import CachedAnswer, SemanticEntry, open_answers
from routecore.state.vectors import HNSW_FROM, SemanticIndex


def _key() -> str:
    return uuid.uuid4().hex


def _answer(text: str, at: float) -> CachedAnswer:
    return CachedAnswer(text, "gpt-4o-mini", "openai", "stop", 12, 34, 0.0021, at)


async def test_an_answer_is_found_by_its_tenant_only_until_it_expires(state_backend: Any) -> None:
    """A stored answer comes back for its tenant and key only, and not after its TTL."""
    store, key = open_answers(state_backend), _key()
    now = state_backend.clock()
    store.put("acme", key, _answer("Canberra.", now), ttl_s=60)
    for _ in range(2):  # before and after the writer has flushed (Redis)
        assert await store.get("acme", key) == _answer("Canberra.", now)
        assert await store.get("globex", key) is None
        assert await store.get("acme", _key()) is None
        await store.aclose()
    store.put("acme", key, _answer("Canberra, ACT.", now), ttl_s=60)  # a refresh replaces
    await store.aclose()
    got = await store.get("acme", key)
    assert got is not None and got.text == "Canberra, ACT."
    if state_backend.kind == "memory":
        state_backend.clock.advance(61)
        assert await store.get("acme", key) is None


async def test_redis_answers_expire_with_their_ttl(redis_url: str) -> None:
    """Redis keeps a cached answer under a TTL in the tenant's hash tag, no longer."""
    from routecore.state import RedisBackend, StateConfig

    backend = RedisBackend(StateConfig(backend="redis", redis_url=redis_url, timeout_s=5.0))
    await backend.start()
    try:
        store, key = open_answers(backend), _key()
        store.put("acme", key, _answer("x", 0.0), ttl_s=30)
        await store.aclose()
        rkey = backend.key("acme", "cache", key)
        assert rkey.startswith("rc:{acme}:cache:")
        assert 0 < await backend.client.ttl(rkey) <= 30
    finally:
        await backend.aclose()


async def test_semantic_entries_reach_the_other_replica_not_the_same(redis_url: str) -> None:
    """An entry published by replica A is read by B's `updates`, and never echoed back to A."""
    from routecore.state import RedisBackend, StateConfig
    from routecore.state import cache as cache_mod

    backends = [RedisBackend(StateConfig(backend="redis", redis_url=redis_url, timeout_s=5.0))
                for _ in range(2)]
    for b in backends:
        await b.start()
    a, b = (open_answers(x) for x in backends)
    assert not isinstance(a, cache_mod.MemoryAnswers) and not isinstance(b,
                                                                         cache_mod.MemoryAnswers)
    tenant = f"t-{_key()[:8]}"
    vec = np.ones(4, np.float32) / 2
    try:
        await b.updates()  # b's cursor: wherever the log is now
        while await b.updates():
            b._synced = 0.0
        a.publish(SemanticEntry(tenant, "k1", "ctx", vec, (("30",), ()), 1.0), ttl_s=60)
        await a.aclose()
        b._synced = a._synced = 0.0
        got = [e for e in await b.updates() if e.tenant == tenant]
        assert len(got) == 1 and got[0].key == "k1" and got[0].context == "ctx"
        assert got[0].guard == (("30",), ()) and np.allclose(got[0].vector, vec)
        assert [e for e in await a.updates() if e.tenant == tenant] == []
    finally:
        for s in (a, b):
            await s.aclose()
        for x in backends:
            await x.aclose()


def _entry(tenant: str, vec: np.ndarray, at: float, key: str = "") -> SemanticEntry:
    v = (vec / np.linalg.norm(vec)).astype(np.float32)
    return SemanticEntry(tenant, key or _key(), "ctx", v, (), at)


def test_index_search_is_per_tenant_nearest_first_and_skips_expired() -> None:
    """Search finds the tenant's own nearest live vectors only."""
    now = [100.0]
    index = SemanticIndex(4, ttl_s=10, max_entries=100, clock=lambda: now[0])
    index.add(_entry("acme", np.array([1, 0, 0, 0.0]), 100.0, "a1"))
    index.add(_entry("acme", np.array([1, 1, 0, 0.0]), 100.0, "a2"))
    index.add(_entry("globex", np.array([1, 0, 0, 0.0]), 100.0, "g1"))
    q = np.array([1, 0, 0, 0], np.float32)
    hits = index.search("acme", q, k=8)
    assert [e.key for _, e in hits] == ["a1", "a2"] and hits[0][0] > hits[1][0]
    assert [e.key for _, e in index.search("globex", q)] == ["g1"]
    assert index.search("initech", q) == []
    now[0] = 111.0
    assert index.search("acme", q) == []


def test_index_turns_to_hnsw_when_large_and_stays_bounded() -> None:
    """Past HNSW_FROM vectors a tenant's index is an HNSW graph that still finds the nearest;
    past max_entries it keeps its newest."""
    rng = np.random.default_rng(0)
    index = SemanticIndex(16, ttl_s=1e9, max_entries=2 * HNSW_FROM, clock=lambda: 1.0)
    vecs = rng.normal(size=(HNSW_FROM + 200, 16)).astype(np.float32)
    for i, v in enumerate(vecs):
        index.add(_entry("acme", v, 1.0, f"k{i}"))
    assert index.kind("acme") == "hnsw" and index.kind("globex") == ""
    last = vecs[-1] / np.linalg.norm(vecs[-1])
    assert index.search("acme", last, k=1)[0][1].key == f"k{len(vecs) - 1}"
    small = SemanticIndex(16, ttl_s=1e9, max_entries=100, clock=lambda: 1.0)
    for i, v in enumerate(vecs[:500]):
        small.add(_entry("acme", v, 1.0, f"k{i}"))
    assert len(small) <= 100
    assert small.search("acme", vecs[499] / np.linalg.norm(vecs[499]), k=1)[0][1].key == "k499"


def test_many_tenants_stay_within_the_total_cap() -> None:
    """Past max_total entries, the tenants that stored least recently are dropped whole,
    and the one storing now keeps its entries."""
    index = SemanticIndex(4, ttl_s=1e9, max_entries=16, clock=lambda: 1.0, max_total=40)
    q = np.array([1, 0, 0, 0], np.float32)
    for t in range(30):
        for i in range(3):
            index.add(_entry(f"t{t}", np.array([1, i, 0, 0.0]), 1.0, f"t{t}-{i}"))
    assert len(index) <= 40
    assert index.search("t0", q) == [] and len(index.search("t29", q)) == 3
