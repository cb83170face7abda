"""The response cache: which requests may be answered from it, how, and what is stored.

    cache:
      exact: {ttl_s: 3600}                        # same tenant, chat, model and parameters
      semantic: {threshold: 0.9, ttl_s: 3600, categories: [qa, chat]}   # paraphrases too

Per request (CompleteRequest.cache / cache_max_age_s; the HTTP door's
`routecore.cache` / `x-routecore-cache`): `default` looks up and stores;
`bypass` does neither; `refresh` skips the lookup and stores the fresh answer;
`allow` also caches when temperature > 0 (never cached otherwise). A hit must
be at most `cache_max_age_s` old (0: up to the TTL).

Exact key: SHA-256 of the tenant, the normalised chat (roles and contents,
whitespace collapsed), the routed model and every parameter that changes the
answer (temperature, max tokens, json mode, cascade and ensemble options, the
process's cascade/ensemble config). Semantic: the last user message's static
embedding searched in the tenant's FAISS index (state/vectors.py) among
entries with the same everything-else; a hit needs cosine >= threshold, the
decision's category among `categories` (empty: all) and the guard
(calling/cache_guard.py). Only finished answers are stored: never an error,
a truncated answer (finish_reason length) or a stream that failed. A hit
costs nothing and is not charged to budgets; it reports what it saved.
Identical Completes in flight at once share one model call
(calling/cache_flights.py).

Where it lives: answers in the state backend (state/cache.py; with Redis every
replica shares them), the semantic index in each process, fed by this
process's answers and, with Redis, by a shared log of every replica's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from routecore.calling import cache_guard
from routecore.calling.cache_flights import Flights
from routecore.calling.deadline import Deadline
from routecore.calling.types import CompletionRequest, CompletionResult, StreamEvent, Usage
from routecore.config import Config, _Reader
from routecore.domain import Decision, Message
from routecore.errors import InvalidRequest, StateUnavailable, echo
from routecore.state.backend import Backend, MemoryBackend
from routecore.state.cache import CachedAnswer, SemanticEntry, open_answers
from routecore.state.vectors import SemanticIndex

if TYPE_CHECKING:
    from routecore.state.cache import MemoryAnswers, RedisAnswers

POLICIES = ("default", "bypass", "refresh", "allow")
MAX_AGE_S = 10 * 365 * 86_400  # a larger cache_max_age_s is a mistake, not a wish
MAX_TTL_S = 30 * 86_400
STORED_FINISH = frozenset({"", "stop", "end_turn", "stop_sequence"})  # finished answers only
SEARCH_K = 8
STREAM_CHARS = 64  # a cached answer streams in pieces of about this many characters


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The validated `cache` section (absent: no cache)."""

    exact_ttl_s: float = 0.0  # 0: no exact lookups
    semantic_ttl_s: float = 0.0  # 0: no semantic lookups
    threshold: float = 0.9
    categories: frozenset[str] = frozenset()  # empty: every category
    max_prompt_chars: int = 4_000  # longer prompts: exact lookups only
    max_entries: int = 10_000  # semantic entries per tenant (per process)
    max_total_entries: int = 100_000  # all tenants together (per process)

    @property
    def enabled(self) -> bool:
        return self.exact_ttl_s > 0 or self.semantic_ttl_s > 0


NO_CACHE_CONFIG = CacheConfig()


def parse_cache(node: Any, config: Config, problems: list[str]) -> CacheConfig:
    """Validate the `cache` section; problems name the exact field."""
    r, p, d = _Reader(), "cache", CacheConfig()
    n = r.mapping(node, p, required=False)
    r.unknown(n, p, {"exact", "semantic"})
    exact = r.mapping(n.get("exact"), f"{p}.exact", required=False) if "exact" in n else None
    if exact is not None:
        r.unknown(exact, f"{p}.exact", {"ttl_s"})
    sem = r.mapping(n.get("semantic"), f"{p}.semantic", required=False) \
        if "semantic" in n else None
    if sem is not None:
        r.unknown(sem, f"{p}.semantic",
                  {"threshold", "ttl_s", "categories", "max_prompt_chars", "max_entries",
                   "max_total_entries"})
    e_ttl = r.number(exact, "ttl_s", f"{p}.exact", lo=1, hi=MAX_TTL_S, default=3600.0) \
        if exact is not None else 0.0
    s = sem if sem is not None else {}
    q = f"{p}.semantic"
    threshold = r.number(s, "threshold", q, lo=0.0, hi=1.0, default=d.threshold)
    s_ttl = r.number(s, "ttl_s", q, lo=1, hi=MAX_TTL_S, default=3600.0)
    cats = r.strings(s, "categories", q)
    for i, c in enumerate(cats):
        if c not in config.categories:
            r.fail(f"{q}.categories[{i}]",
                   f"unknown category {c!r} (known: {', '.join(config.categories)})")
    chars = r.number(s, "max_prompt_chars", q, lo=1, hi=1_000_000, integer=True,
                     default=d.max_prompt_chars)
    entries = r.number(s, "max_entries", q, lo=16, hi=10_000_000, integer=True,
                       default=d.max_entries)
    total = r.number(s, "max_total_entries", q, lo=16, hi=100_000_000, integer=True,
                     default=d.max_total_entries)
    problems.extend(r.problems)
    if r.problems:
        return d
    return CacheConfig(exact_ttl_s=float(e_ttl or 0.0),
                       semantic_ttl_s=float(s_ttl) if sem is not None else 0.0,
                       threshold=float(threshold), categories=frozenset(cats),
                       max_prompt_chars=int(chars), max_entries=int(entries),
                       max_total_entries=int(total))


def check_request(policy: str, max_age_s: int, prefix: str = "") -> None:
    """InvalidRequest naming the field unless the per-request options are valid."""
    if policy not in ("", *POLICIES):
        raise InvalidRequest(f"{prefix}cache: must be one of {', '.join(POLICIES)}, "
                             f"got {echo(policy, 40)}")
    if not 0 <= max_age_s <= MAX_AGE_S:
        raise InvalidRequest(f"{prefix}cache_max_age_s: must be in [0, {MAX_AGE_S}] "
                             f"(0: up to the cache's TTL), got {max_age_s}")


def client_hit(outcome: str) -> str:
    """A Lookup outcome as clients see it (gRPC cache_hit, the HTTP door): exact,
    semantic, else none."""
    return outcome if outcome in ("exact", "semantic") else "none"


@dataclass(slots=True)
class Lookup:
    """One request's dealings with the cache: its outcome and, on a hit, the answer.

    outcome: "" no cache; "bypass"/"skip" (temperature > 0) not looked up nor stored;
    "refresh" not looked up, stored; "miss"; "exact"/"semantic" a hit.
    """

    outcome: str
    tenant: str = ""
    key: str = ""
    context: str = ""
    guard: cache_guard.Guard = ()
    vector: npt.NDArray[np.float32] | None = None
    answer: CachedAnswer | None = None
    leads: bool = False  # the first of identical Completes in flight (calling/cache_flights.py)

    @property
    def storable(self) -> bool:
        return self.outcome in ("miss", "refresh")

    def result(self, decision: Decision, latency_ms: float) -> CompletionResult:
        """The hit as a Complete result: free, saying what it saved."""
        a = self.answer
        assert a is not None
        return CompletionResult(
            text=a.text, model=a.model, provider=a.provider, usage=Usage(), cost_usd=0.0,
            latency_ms=latency_ms, attempts=(), decision=decision,
            request_id=decision.request_id, finish_reason=a.finish_reason or "stop",
            cache_hit=self.outcome, saved_usd=a.cost_usd)

    async def stream(self, decision: Decision) -> AsyncIterator[StreamEvent]:
        """The hit as a stream: its text in pieces, then the usual last event."""
        a = self.answer
        assert a is not None
        rid = decision.request_id
        for piece in _pieces(a.text):
            yield StreamEvent(delta=piece, model=a.model, request_id=rid, provider=a.provider,
                              decision=decision, cache_hit=self.outcome)
        yield StreamEvent(model=a.model, done=True, usage=Usage(), cost_usd=0.0,
                          request_id=rid, finish_reason=a.finish_reason or "stop",
                          provider=a.provider, decision=decision, cache_hit=self.outcome,
                          saved_usd=a.cost_usd)


NO_CACHE = Lookup("")


def _pieces(text: str) -> list[str]:
    """`text` cut after whitespace every ~STREAM_CHARS (one piece for an empty text)."""
    out, start = [], 0
    while start < len(text):
        end = start + STREAM_CHARS
        if end < len(text):
            space = text.rfind(" ", start + 1, end)
            end = space + 1 if space > start else end
        out.append(text[start:end])
        start = end
    return out or [""]


class ResponseCache:
    """One per Completer; `lookup` before calling models, `store` after a finished answer."""

    def __init__(self, cfg: CacheConfig, state: Backend | None, salt: str = "",
                 embed: Callable[[str], npt.NDArray[np.float32]] | None = None,
                 version: Callable[[CompletionRequest, Decision], str] | None = None) -> None:
        self.cfg = cfg
        self.salt = salt  # the process's settings that change answers (cascade, ensemble)
        # The upstream version this caller gets for the routed model (a staged rollout
        # sends users to different ones): an answer of one never serves the other's users.
        self._version = version
        backend = state if state is not None else MemoryBackend()
        self.clock = backend.clock
        self.store_ttl_s = max(cfg.exact_ttl_s, cfg.semantic_ttl_s)
        self.answers: MemoryAnswers | RedisAnswers | None = None
        self.index: SemanticIndex | None = None
        self._embed = embed
        self.flights = Flights()
        if cfg.enabled:
            self.answers = open_answers(backend)
        if cfg.semantic_ttl_s > 0:
            if self._embed is None:
                from routecore.routing.embedding import StaticEmbedder  # loads ~8 MB, once
                self._embed = StaticEmbedder.shipped().embed
            dim = int(self._embed("dimension").shape[0])
            self.index = SemanticIndex(dim, cfg.semantic_ttl_s, cfg.max_entries, self.clock,
                                       cfg.max_total_entries)

    async def lookup(self, req: CompletionRequest, decision: Decision,
                     wait: Deadline | None = None) -> Lookup:
        """What the cache says about `req` routed to `decision` (never raises on a miss).

        With `wait` (Complete: a caller that may wait, within that deadline) a miss
        whose identical request is in flight waits for its answer; a miss that is
        first leads it until its answer is offered to `store` (or its task ends)."""
        check_request(req.cache, req.cache_max_age_s)
        if self.answers is None:
            return NO_CACHE
        if req.cache == "bypass":
            return Lookup("bypass")
        if req.temperature > 0 and req.cache != "allow":
            return Lookup("skip")
        msgs = req.messages()
        last = msgs[-1]
        version = self._version(req, decision) if self._version is not None else ""
        context = _digest([self.salt, decision.model, decision.model_version, version,
                           req.route.model, req.temperature,
                           req.max_output_tokens, req.route.constraints.max_output_tokens,
                           req.json_mode, req.cascade, req.cascade_threshold,
                           req.ensemble_size, [_norm(m) for m in msgs[:-1]], last.role])
        tenant = req.route.tenant
        look = Lookup("refresh" if req.cache == "refresh" else "miss", tenant,
                      _digest([tenant, context, _norm(last)[1]]), context)
        semantic = (self.index is not None and last.role == "user"
                    and len(last.content) <= self.cfg.max_prompt_chars
                    and (not self.cfg.categories or decision.category in self.cfg.categories))
        try:
            if look.outcome == "miss" and await self._exact(look, req, wait):
                return look
            if semantic:  # the vector and guard are stored with the answer too
                assert self._embed is not None
                look.vector = self._embed(last.content)
                look.guard = cache_guard.extract(last.content)
                if look.outcome == "miss":
                    await self._semantic(look, self._oldest(req, self.cfg.semantic_ttl_s))
        except StateUnavailable:  # the backend logged it: a cache that is down is a miss
            pass
        except BaseException:
            if look.leads:  # never leave followers waiting on a lookup that failed
                self.flights.land((tenant, look.key))
            raise
        return look

    async def _exact(self, look: Lookup, req: CompletionRequest, wait: Deadline | None) -> bool:
        """An exact hit, after waiting for an identical request in flight if one is."""
        assert self.answers is not None
        oldest = self._oldest(req, self.cfg.exact_ttl_s or self.store_ttl_s)
        if self.cfg.exact_ttl_s > 0:
            a = await self.answers.get(look.tenant, look.key)
            if a is not None and a.stored_at >= oldest:
                look.outcome, look.answer = "exact", a
                return True
        if wait is None:
            return False
        leader = self.flights.lead((look.tenant, look.key))
        if leader is None:
            look.leads = True
            return False
        await self.flights.follow(leader, wait.remaining())
        a = await self.answers.get(look.tenant, look.key)
        if a is not None and a.stored_at >= oldest:  # the leader's answer
            look.outcome, look.answer = "exact", a
            return True
        return False

    def _oldest(self, req: CompletionRequest, ttl_s: float) -> float:
        """The oldest answer `req` accepts: its cache_max_age_s, within the TTL."""
        age = min(ttl_s, req.cache_max_age_s) if req.cache_max_age_s else ttl_s
        return self.clock() - age

    async def _semantic(self, look: Lookup, oldest: float) -> None:
        assert self.index is not None and self.answers is not None and look.vector is not None
        for entry in await self.answers.updates():
            self.index.add(entry)
        embed = self._embed
        assert embed is not None
        for sim, e in self.index.search(look.tenant, look.vector, SEARCH_K):
            if sim < self.cfg.threshold:
                break
            if e.context != look.context or e.stored_at < oldest or \
                    not cache_guard.passes(look.guard, e.guard, embed):
                continue
            a = await self.answers.get(look.tenant, e.key)
            if a is not None and a.stored_at >= oldest:
                look.outcome, look.answer = "semantic", a
                return

    def store(self, look: Lookup, answer: CompletionResult | StreamEvent, text: str) -> None:
        """Keep a finished answer (not an error, not a truncated one); never waits."""
        self._put(look, answer, text)
        if look.leads:  # stored or not, identical requests waiting for it look again now
            self.flights.land((look.tenant, look.key))

    def _put(self, look: Lookup, answer: CompletionResult | StreamEvent, text: str) -> None:
        if not look.storable or self.answers is None or \
                answer.finish_reason not in STORED_FINISH or not text:
            return
        now = self.clock()
        u = answer.usage or Usage()
        self.answers.put(look.tenant, look.key, CachedAnswer(
            text, answer.model, answer.provider, answer.finish_reason, u.input_tokens,
            u.output_tokens, answer.cost_usd, now), self.store_ttl_s)
        if look.vector is not None and self.index is not None:
            entry = SemanticEntry(look.tenant, look.key, look.context, look.vector, look.guard,
                                  now)
            self.index.add(entry)
            self.answers.publish(entry, self.cfg.semantic_ttl_s)

    async def aclose(self) -> None:
        if self.answers is not None:
            await self.answers.aclose()


def _norm(m: Message) -> tuple[str, str]:
    return m.role, " ".join(m.content.split())


def _digest(parts: list[Any]) -> str:
    raw = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
