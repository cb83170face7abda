"""The Complete orchestrator: route, call the models with fallbacks, cascade or ensemble, stream.

    completer = Completer(config, router)           # or any `route(RouteRequest) -> Decision`
    result = await completer.complete(CompletionRequest(RouteRequest(prompt="hi")),
                                      Deadline.from_grpc(context))
    async for event in completer.stream(req, deadline): ...
    await completer.aclose()                         # on shutdown: closes the HTTP pools

The fallback chain is decision.model then decision.fallbacks; inside a model,
its deployments least-loaded first; inside a deployment, `Resilience.call`
retries. Every try is recorded as an `Attempt`; when nothing answers,
`AllProvidersFailed` carries them all (`ResourceExhausted` when only the
client-side rate limits refused, `DeadlineExceeded` when time ran out). A
request is answered at most once: no hedged or duplicate call is made after a
success, and a stream fails over only before its first chunk reaches the
caller (after it, a failure raises `StreamInterrupted`).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import structlog

from routecore.calling.cache import NO_CACHE_CONFIG, CacheConfig, ResponseCache, parse_cache
from routecore.calling.cascade import CascadeConfig, parse_cascade, run_cascade
from routecore.calling.deadline import Deadline
from routecore.calling.ensemble import EnsembleConfig, parse_ensemble, run_ensemble
from routecore.calling.llm_classifier import LlmClassifier
from routecore.calling.providers import HttpPool, Provider, ProviderCall, SimEngine, build_providers
from routecore.calling.providers.base import ProviderResponse, StreamChunk
from routecore.calling.providers.simulated import validate_sim
from routecore.calling.resilience import Resilience, ResilienceConfig, parse_resilience
from routecore.calling.rollout import Rollout, Rollouts, parse_rollout
from routecore.calling.shadow import ShadowRunner, ShadowSettings, parse_shadow
from routecore.calling.types import (
    Attempt,
    CascadeStep,
    CompletionRequest,
    CompletionResult,
    ModelAnswer,
    StreamEvent,
    Usage,
)
from routecore.config import Config, Deployment, ModelSpec, Price
from routecore.domain import Decision, Message, RouteRequest
from routecore.errors import (
    AllProvidersFailed,
    AttemptError,
    ConfigError,
    DeadlineExceeded,
    InvalidRequest,
    ProviderError,
    ResourceExhausted,
    StreamInterrupted,
)
from routecore.routing.arbitrage import deployments_of, price_of, rank
from routecore.routing.compress import applied
from routecore.routing.load import open_load
from routecore.routing.tokens import count_chat_tokens, count_tokens
from routecore.state.backend import Backend
from routecore.state.budget import BudgetExceeded, Budgets, Hold

log = structlog.get_logger("routecore.calling.completion")
RouteFn = Callable[[RouteRequest], "Decision | Awaitable[Decision]"]
MAX_ENSEMBLE = 8
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CompletionSettings:
    """The validated `resilience`, `cascade`, `ensemble`, `rollout` and `shadow` sections."""

    resilience: ResilienceConfig
    cascade: CascadeConfig
    ensemble: EnsembleConfig
    rollout: Rollout | None = None
    cache: CacheConfig = NO_CACHE_CONFIG
    shadow: ShadowSettings | None = None


def parse_settings(config: Config) -> CompletionSettings:
    """Validate the sections this layer owns (and every model's `sim`); raise ConfigError."""
    problems: list[str] = []
    settings = CompletionSettings(
        resilience=parse_resilience(config.extra.get("resilience"), problems),
        cascade=parse_cascade(config.extra.get("cascade"), config, problems),
        ensemble=parse_ensemble(config.extra.get("ensemble"), config, problems),
        rollout=parse_rollout(config.extra.get("rollout"), config, problems),
        cache=parse_cache(config.extra.get("cache"), config, problems),
        shadow=parse_shadow(config.extra.get("shadow"), config, problems),
    )
    problems.extend(validate_sim(config.models))
    if problems:
        raise ConfigError(problems)
    return settings


@dataclass(frozen=True, slots=True)
class _Held:
    """What one model's call holds until it is settled: TPM tokens and a budget hold."""

    tokens: int
    budget: Hold | None


@dataclass(frozen=True, slots=True)
class _Target:
    model: str
    spec: ModelSpec
    key: str  # "endpoint/model_id": the breaker, load-stats and deployment-limit key
    endpoint: str
    model_id: str
    weight: float
    deployment: Deployment
    provider: str  # who sells this deployment (and bills it)
    price: Price  # this deployment's price (the model's unless it has its own)

    def cost(self, usage: Usage) -> float:
        """What this deployment charges (its long-context tier when the input is past it)."""
        return self.price.cost(usage.input_tokens, usage.output_tokens)


class Completer:
    """Calls the models for Complete/CompleteStream. One per process; `aclose()` on shutdown."""

    def __init__(self, config: Config, router: Any, *,
                 providers: Mapping[str, Provider] | None = None,
                 resilience: Resilience | None = None,
                 sim_engine: SimEngine | None = None,
                 budgets: Budgets | None = None, state: Backend | None = None) -> None:
        self.config = config
        self.settings = parse_settings(config)
        route = getattr(router, "route", router)
        if not callable(route):
            raise TypeError("router must be a Router or a callable route(RouteRequest)")
        self._route: Callable[[RouteRequest], Any] = route
        self.pool = HttpPool()
        self.providers = dict(providers) if providers is not None else \
            dict(build_providers(config, self.pool, sim_engine))
        # Breakers and rate limits on the state backend: one per fleet with Redis.
        self.resilience = resilience or Resilience(self.settings.resilience, state=state)
        self._key_model: dict[str, str] = {}
        self.rollouts = Rollouts(self.settings.rollout, config.models)
        self.budgets = budgets if budgets is not None and budgets.enabled else None
        s = self.settings  # a cached answer is keyed on the settings that change answers too
        self.cache = ResponseCache(s.cache, state, salt=repr((s.cascade, s.ensemble)),
                                   version=self.rollouts.version_for)
        self.shadow: ShadowRunner | None = None  # set by the server: offered every answer
        if hasattr(router, "health_source") and self.settings.resilience.breaker.enabled:
            router.health_source = self.health
        # Deployment key -> monotonic time until which its own rpm/tpm refused a call.
        self._over_limit: dict[str, float] = {}
        if hasattr(router, "deployment_health"):
            router.deployment_health = self.deployment_health
        # classifier.mode llm or cascade: routing awaits an LLM classification (else None).
        self.llm_classifier = LlmClassifier.build(config, router, self)
        # Observed load (routing/load.py): each model's calls recorded, the router fed.
        self.load = open_load(config, state, self.resilience.limits,
                              self.settings.resilience.rate_limit.enabled)
        if self.load is not None and hasattr(router, "load_source"):
            router.load_source = self.load.snapshot

    # -- public API -----------------------------------------------------------

    async def complete(self, req: CompletionRequest,
                       deadline: Deadline | None = None) -> CompletionResult:
        """Route and answer once: plain fallback chain, cascade or ensemble."""
        deadline = self._budget(deadline)
        started = time.monotonic()
        self._validate(req)
        decision = await self._decide(req, deadline)
        req = _compressed(req, decision)  # cached and sent as compressed
        look = await self.cache.lookup(req, decision, deadline)
        if look.answer is not None:  # a hit: no model called, nothing charged
            return look.result(decision, (time.monotonic() - started) * 1000.0)
        attempts: list[Attempt] = []
        steps: tuple[CascadeStep, ...] = ()
        ensemble = self._ensemble_size(req)
        if ensemble > 1:
            answer, steps, usage, cost = await run_ensemble(
                self, self.settings.ensemble, req, decision, ensemble, deadline, attempts)
        elif req.cascade or self.settings.cascade.enabled:
            answer, steps, usage, cost = await run_cascade(
                self, self.settings.cascade, req, decision, deadline, attempts)
        else:
            answer = await self.call_models(self.chain(decision), req, decision, deadline,
                                            attempts)
            usage, cost = answer.usage, answer.cost_usd
        result = CompletionResult(
            text=answer.text, model=answer.model, provider=answer.provider, usage=usage,
            cost_usd=cost, latency_ms=(time.monotonic() - started) * 1000.0,
            attempts=tuple(attempts), cascade_steps=steps, decision=decision,
            request_id=decision.request_id, finish_reason=answer.finish_reason,
            deployment=answer.deployment_name, cache_hit=look.outcome)
        self.cache.store(look, result, result.text)
        if self.shadow is not None:  # only queues: the evaluation runs after we return
            self.shadow.offer(self, req, result, result.text)
        return result

    async def stream(self, req: CompletionRequest,
                     deadline: Deadline | None = None) -> AsyncIterator[StreamEvent]:
        """Route and stream; fails over only before the first chunk is yielded.

        Cascades and ensembles need whole answers to judge, so with either the
        answer is produced as by `complete` and sent as one delta.
        """
        deadline = self._budget(deadline)
        self._validate(req)
        if req.cascade or self.settings.cascade.enabled or self._ensemble_size(req) > 1:
            result = await self.complete(req, deadline)
            yield StreamEvent(delta=result.text, model=result.model, request_id=result.request_id,
                              provider=result.provider, decision=result.decision,
                              cache_hit=result.cache_hit)
            yield StreamEvent(model=result.model, done=True, usage=result.usage,
                              cost_usd=result.cost_usd, attempts=result.attempts,
                              request_id=result.request_id, finish_reason=result.finish_reason,
                              provider=result.provider, decision=result.decision,
                              deployment=result.deployment,
                              cache_hit=result.cache_hit, saved_usd=result.saved_usd)
            return
        decision = await self._decide(req, deadline)
        req = _compressed(req, decision)  # cached and sent as compressed
        look = await self.cache.lookup(req, decision)
        if look.answer is not None:  # served from the cache, as a stream
            async for event in look.stream(decision):
                yield event
            return
        attempts: list[Attempt] = []
        target, (first, chunks), reserved = await self._call_chain(
            self.chain(decision), req, decision, deadline, attempts, _first_chunk)
        rid, model, provider = decision.request_id, target.model, target.provider
        first_at = time.monotonic()
        parts: list[str] = []
        end: StreamChunk | None = None
        chunk: StreamChunk | None = first
        cut = False
        try:
            while end is None:
                if chunk is None:
                    try:
                        chunk = await self._next_chunk(chunks, deadline)
                    except StopAsyncIteration:
                        cut = True
                        err = ProviderError("stream ended without its end marker",
                                            kind="stream_cut")
                        raise self._interrupted(target, attempts, len(parts), err) from None
                    except ProviderError as exc:
                        cut = True
                        raise self._interrupted(target, attempts, len(parts), exc) from exc
                if chunk.delta:
                    parts.append(chunk.delta)
                    yield StreamEvent(delta=chunk.delta, model=model, request_id=rid,
                                      provider=provider, decision=decision)
                if chunk.finish_reason or chunk.usage is not None or not chunk.delta:
                    end = chunk
                chunk = None
        finally:
            # The breaker's verdict on the whole stream: a cut after the first chunk is a
            # failure; a caller who left (or ran out of time) says nothing about the upstream.
            if self.load is not None:
                self.load.finished(model)
                if end is not None and not cut:  # the whole stream: to its first chunk, then on
                    ttft = attempts[-1].duration_ms if attempts and not attempts[-1].error else 0.0
                    self.load.observe(model, ttft + (time.monotonic() - first_at) * 1000.0)
            await self.resilience.verdict(target.key,
                                    False if cut else True if end is not None else None)
            await _close(chunks)
            # Settle the rate-limit and budget holds with what was used, however it ended.
            usage = (end.usage if end is not None else None) or \
                Usage(count_chat_tokens(req.messages()), count_tokens("".join(parts)))
            await self._settle(target, reserved, usage)
        last = StreamEvent(model=model, done=True, usage=usage,
                           cost_usd=target.cost(usage), attempts=tuple(attempts),
                           request_id=rid, finish_reason=end.finish_reason or "stop",
                           provider=provider, decision=decision,
                           deployment=target.deployment.name, cache_hit=look.outcome)
        self.cache.store(look, last, "".join(parts))  # only a stream that ended well gets here
        if self.shadow is not None:  # only queues: the evaluation runs after we return
            self.shadow.offer(self, req, last, "".join(parts))
        yield last

    async def drop_cache(self) -> None:
        """Let the response cache go (a reload retired this completer and no request still
        runs on it): what it writes behind is written, and later lookups find no cache."""
        cache, self.cache = self.cache, ResponseCache(NO_CACHE_CONFIG, None)
        await cache.aclose()

    async def aclose(self) -> None:
        """Close every provider and the HTTP sessions."""
        if self.load is not None:
            await self.load.aclose()
        for p in self.providers.values():
            await p.aclose()
        await self.pool.aclose()
        await self.cache.aclose()

    def health(self) -> Mapping[str, str]:
        """Models whose every deployment of the pinned version has an open breaker (for the
        router's health source). A rolled-out version's open breakers do not take the model
        away from the callers on the pinned one."""
        if not self.settings.resilience.breaker.enabled:
            return {}
        state = self.resilience.breakers.state
        return {m: "circuit open" for m in set(self._key_model.values())
                if all(state(t.key) == "open" for t in self._targets(m))}

    def deployment_health(self, key: str) -> str:
        """Why deployment `key` should not be a first choice now ("" healthy): its breaker
        is open, it is cooling down after a 429, or its own rpm/tpm refused a call (as this
        process last saw it; the call path asks the shared limits again)."""
        now = self.resilience.clock()
        if self.settings.resilience.breaker.enabled and \
                self.resilience.breakers.state(key) == "open":
            return "circuit open"
        if self.resilience.stats(key).blocked_until > now:
            return "cooling down after a 429"
        until = self._over_limit.get(key)
        if until is not None:
            if until > now:
                return "at its rate limit"
            del self._over_limit[key]
        return ""

    def breaker_states(self) -> dict[str, str]:
        """Each called model's worst deployment breaker state (closed < half_open < open)."""
        rank = {"closed": 0, "half_open": 1, "open": 2}
        out: dict[str, str] = {}
        for key, model in self._key_model.items():
            state = self.resilience.breakers.state(key)
            if rank.get(state, 0) >= rank.get(out.get(model, "closed"), 0):
                out[model] = state
        return out

    # -- the fallback chain -----------------------------------------------------

    def chain(self, decision: Decision) -> list[str]:
        """decision.model then decision.fallbacks, each once."""
        return list(dict.fromkeys((decision.model, *decision.fallbacks)))

    def max_output_tokens(self, req: CompletionRequest, spec: ModelSpec) -> int:
        n = (req.max_output_tokens or req.route.constraints.max_output_tokens
             or self.config.routing.default_output_tokens)
        return min(n, spec.max_output_tokens)

    async def call_models(self, models: Sequence[str], req: CompletionRequest,
                          decision: Decision, deadline: Deadline, attempts: list[Attempt], *,
                          messages: tuple[Message, ...] | None = None,
                          logprobs: bool = False) -> ModelAnswer:
        """The first answer along `models` (each: deployments by load, retries inside)."""
        target, resp, reserved = await self._call_chain(
            models, req, decision, deadline, attempts, _complete, messages=messages,
            logprobs=logprobs)
        msgs = messages if messages is not None else req.messages()
        usage = resp.usage or Usage(count_chat_tokens(msgs),
                                    count_tokens(resp.text))
        await self._settle(target, reserved, usage)
        return ModelAnswer(target.model, target.provider, target.key, resp.text,
                           resp.finish_reason, usage, target.cost(usage), resp.logprobs,
                           deployment_name=target.deployment.name)

    async def _call_chain(self, models: Sequence[str], req: CompletionRequest,
                          decision: Decision, deadline: Deadline, attempts: list[Attempt],
                          run: Callable[[Provider, ProviderCall], Callable[[float], Awaitable[T]]],
                          *, messages: tuple[Message, ...] | None = None,
                          logprobs: bool = False) -> tuple[_Target, T, _Held]:
        """The first success of `run(provider, call)` along the chain: (target, result, held).

        Before a model is called its worst-case cost is reserved on the caller's
        budgets (a model that does not fit is skipped, as a rate-limited one is)
        and its tokens on its TPM limit; the caller settles `held` with the real
        usage. A model that does not answer gives both back (and its request
        slot too when no call reached the upstream).
        """
        msgs = messages if messages is not None else req.messages()
        # Deployments per model: each one's retries get a fair share of the time left
        # among those still to try (itself included).
        counts = [len(self._targets(m)) if m in self.config.models else 0 for m in models]
        for i, model in enumerate(models):
            left = sum(counts[i:])
            spec = self.config.models.get(model)
            if spec is None:
                attempts.append(Attempt("", model, "", "unknown model"))
                continue
            # A staged rollout sends this caller to its sticky version (model_id and price).
            spec = self.rollouts.spec_for(spec, req.route.user or req.route.tenant
                                          or decision.request_id)
            max_out = self.max_output_tokens(req, spec)
            n_in = decision.input_tokens if messages is None and decision.input_tokens else \
                count_chat_tokens(msgs)
            reserved = n_in + max_out
            # This model's deployments, cheapest healthy first within the constraints.
            targets = self._ordered_targets(spec, n_in, max_out, req)
            try:
                hold = await self._reserve_budget(req, targets, n_in, max_out)
            except BudgetExceeded as exc:  # this model does not fit: a cheaper one may
                attempts.append(Attempt(spec.provider, model, "", exc.message))
                continue
            if not await self._admit(spec, reserved, deadline, attempts):
                await self._release(hold)
                continue
            sent = 0
            answered = False
            load = self.load
            if load is not None:
                load.started(model)
            try:
                for target in targets:
                    share = deadline.share(left)
                    left -= 1
                    provider = self.providers.get(target.endpoint)
                    if provider is None:
                        attempts.append(Attempt(target.provider, model, target.key,
                                                f"no endpoint named {target.endpoint!r}"))
                        continue
                    if not await self._admit_deployment(target, reserved, attempts):
                        continue
                    before = sent
                    fn = run(provider, ProviderCall(model, target.model_id, msgs, max_out,
                                                    req.temperature, req.json_mode, logprobs,
                                                    decision.request_id))

                    async def once(timeout: float, fn: Callable[[float], Awaitable[T]] = fn) -> T:
                        nonlocal sent
                        sent += 1
                        return await fn(timeout)

                    try:
                        result = await self.resilience.call(
                            target.key, once, timeout=provider.timeout_s, deadline=deadline,
                            on_attempt=self._recorder(attempts, target,
                                                      run is not _first_chunk),
                            late_verdict=run is _first_chunk, share=share)
                    except DeadlineExceeded as exc:
                        await self._correct_deployment(target, -reserved,
                                                       0 if sent > before else -1)
                        raise self._deadline_error(attempts) from exc
                    except ProviderError as exc:
                        await self._correct_deployment(target, -reserved,
                                                       0 if sent > before else -1)
                        log.debug("provider_attempt_failed", model=model, deployment=target.key,
                                  kind=exc.kind)
                        if exc.kind == "context_overflow":
                            break  # the same model on another deployment overflows the same way
                        continue
                    answered = True
                    return target, result, _Held(reserved, hold)
            finally:
                if load is not None and (not answered or run is not _first_chunk):
                    load.finished(model)  # a stream stays in flight until it ends
                if not answered:
                    await self._correct(spec, -reserved, 0 if sent else -1)
                    await self._release(hold)  # nothing answered: nothing to pay
        raise self._failure(attempts)

    async def _next_chunk(self, it: AsyncIterator[StreamChunk], deadline: Deadline) -> StreamChunk:
        remaining = deadline.remaining()
        if remaining is None:
            return await anext(it)
        try:
            async with asyncio.timeout(remaining):
                return await anext(it)
        except TimeoutError as exc:
            raise DeadlineExceeded("deadline exceeded while streaming") from exc

    # -- helpers ------------------------------------------------------------------

    def _budget(self, deadline: Deadline | None) -> Deadline:
        """The caller's deadline, capped by the configured total time budget."""
        return (deadline or Deadline.none()).within(self.settings.resilience.total_timeout_s)

    async def _decide(self, req: CompletionRequest, deadline: Deadline) -> Decision:
        if self.llm_classifier is not None:
            return await self.llm_classifier.route(req.route, deadline)
        out = self._route(req.route)
        if inspect.isawaitable(out):
            out = await out
        if not isinstance(out, Decision):
            raise TypeError(f"route() returned {type(out).__name__}, not a Decision")
        return out

    def _validate(self, req: CompletionRequest) -> None:
        if req.max_output_tokens < 0:
            raise InvalidRequest("max_output_tokens: must be >= 0")
        if not 0.0 <= req.temperature <= 2.0:
            raise InvalidRequest(f"temperature: must be in [0, 2], got {req.temperature}")
        if not 0.0 <= req.cascade_threshold <= 1.0:
            raise InvalidRequest(
                f"cascade_threshold: must be in [0, 1], got {req.cascade_threshold}")
        if not 0 <= req.ensemble_size <= MAX_ENSEMBLE:
            raise InvalidRequest(f"ensemble_size: must be in [0, {MAX_ENSEMBLE}]")

    def _ensemble_size(self, req: CompletionRequest) -> int:
        if req.ensemble_size:
            return req.ensemble_size
        cfg = self.settings.ensemble
        return cfg.size if cfg.enabled else 0

    def _targets(self, model: str, spec: ModelSpec | None = None) -> list[_Target]:
        spec = spec or self.config.models[model]
        out = []
        for d in deployments_of(spec):
            self._key_model.setdefault(d.key, model)
            out.append(_Target(model, spec, d.key, d.endpoint, d.model_id, d.weight, d,
                               d.provider or spec.provider, price_of(spec, d)))
        return out

    def _ordered_targets(self, spec: ModelSpec, n_in: int, max_out: int,
                         req: CompletionRequest) -> list[_Target]:
        """The model's deployments in routing/arbitrage.py's order (cheapest healthy within
        the request's constraints first); among equally priced ones, weights are traffic
        shares and load counts (Resilience.order)."""
        targets = self._targets(spec.name, spec)
        if len(targets) == 1:
            return targets
        c = req.route.constraints
        by_key = {t.key: t for t in targets}
        out: list[_Target] = []
        for group in rank(spec, n_in, max_out, max_latency_ms=c.max_latency_ms,
                          max_cost_usd=c.max_cost_usd, health=self.deployment_health).groups:
            tied = [by_key[o.deployment.key] for o in group]
            if len(tied) > 1:
                order = self.resilience.order([t.key for t in tied], [t.weight for t in tied])
                tied = [tied[i] for i in order]
            out.extend(tied)
        return out

    async def _admit_deployment(self, target: _Target, tokens: int,
                                attempts: list[Attempt]) -> bool:
        """The deployment's own RPM/TPM (a provider's account limits): take the call's
        tokens or skip to the next deployment without waiting (it is the alternative)."""
        rl = target.deployment.rate_limits
        if not self.settings.resilience.rate_limit.enabled or (rl.rpm <= 0 and rl.tpm <= 0):
            return True
        wait = await self.resilience.limits.acquire(f"deployment:{target.key}", rl.rpm, rl.tpm,
                                                    tokens)
        if wait <= 0:
            return True
        self._over_limit[target.key] = self.resilience.clock() + wait
        attempts.append(Attempt(target.provider, target.model, target.key,
                                f"rate limited (client-side): deployment {target.deployment.name} "
                                f"retry in {wait:.3f}s", kind="rate_limit"))
        return False

    async def _correct_deployment(self, target: _Target, delta_tokens: int,
                                  delta_requests: int = 0) -> None:
        rl = target.deployment.rate_limits
        if self.settings.resilience.rate_limit.enabled and (rl.rpm > 0 or rl.tpm > 0):
            await self.resilience.limits.correct(f"deployment:{target.key}", rl.rpm, rl.tpm,
                                                 delta_tokens, delta_requests)

    async def _admit(self, spec: ModelSpec, tokens: int, deadline: Deadline,
                     attempts: list[Attempt]) -> bool:
        """Client-side RPM/TPM: take a request's tokens, wait a little, or skip the model.

        The waits of one admission add up to at most `rate_limit.max_wait_ms`.
        """
        cfg = self.settings.resilience.rate_limit
        rl = spec.rate_limits
        if not cfg.enabled or (rl.rpm <= 0 and rl.tpm <= 0):
            return True
        waited = 0.0
        while True:
            wait = await self.resilience.limits.acquire(spec.name, rl.rpm, rl.tpm, tokens)
            if wait <= 0:
                return True
            remaining = deadline.remaining()
            if (waited + wait) * 1000.0 > cfg.max_wait_ms or \
                    (remaining is not None and wait >= remaining):
                attempts.append(Attempt(spec.provider, spec.name, "",
                                        f"rate limited (client-side): retry in {wait:.3f}s"))
                return False
            await self.resilience.sleep(wait)
            waited += wait

    async def _correct(self, spec: ModelSpec, delta_tokens: int, delta_requests: int = 0) -> None:
        """Give back (negative) or take more of a model's RPM/TPM after the fact."""
        rl = spec.rate_limits
        if self.settings.resilience.rate_limit.enabled and (rl.rpm > 0 or rl.tpm > 0):
            await self.resilience.limits.correct(spec.name, rl.rpm, rl.tpm, delta_tokens,
                                                 delta_requests)

    async def _reserve_budget(self, req: CompletionRequest, targets: Sequence[_Target],
                              n_in: int, max_out: int) -> Hold | None:
        """Hold the call's worst-case cost on the caller's budgets (None: no budget applies):
        the dearest deployment it may fail over to, its price tier included. Raises
        BudgetExceeded, or StateUnavailable when the backend is down (fail closed)."""
        if self.budgets is None:
            return None
        r = req.route
        usd = max(t.price.cost(n_in, max_out) for t in targets)
        return await self.budgets.reserve(r.tenant, r.user, r.key_id, usd, n_in + max_out)

    async def _release(self, hold: Hold | None) -> None:
        if hold is not None and self.budgets is not None:
            await self.budgets.settle(hold, 0.0, 0)

    async def _settle(self, target: _Target, held: _Held, usage: Usage) -> None:
        """Correct a model's TPM reservation and budget hold to what was really used."""
        tokens = usage.input_tokens + usage.output_tokens
        await self._correct(target.spec, tokens - held.tokens)
        await self._correct_deployment(target, tokens - held.tokens)
        if held.budget is not None and self.budgets is not None:
            await self.budgets.settle(held.budget, target.cost(usage), tokens)

    def _interrupted(self, target: _Target, attempts: list[Attempt], chunks: int,
                     exc: ProviderError) -> StreamInterrupted:
        """A stream failed after its first chunk: record the attempt (the breaker counts it)."""
        attempts.append(Attempt(target.provider, target.model, target.key,
                                f"stream interrupted: {exc.message}", kind=exc.kind))
        return StreamInterrupted(f"stream from {target.model}@{target.key} interrupted after "
                                 f"{chunks} chunks: {exc.message}")

    def _recorder(self, attempts: list[Attempt], target: _Target,
                  whole: bool) -> Callable[[int, BaseException | None, float], None]:
        """The attempt hook; with `whole` (not a stream's first chunk) the call's latency is
        observed too: a success's, or a timeout's (it took at least that long)."""
        load = self.load if whole else None

        def record(retry: int, error: BaseException | None, ms: float) -> None:
            msg = "" if error is None else (getattr(error, "message", "") or str(error)
                                            or type(error).__name__)
            kind = "" if error is None else getattr(error, "kind", "") or "error"
            attempts.append(Attempt(target.provider, target.model, target.key, msg, ms, retry,
                                    kind))
            if load is not None and (error is None or kind == "timeout"):
                load.observe(target.model, ms)
        return record

    @staticmethod
    def all_failed(attempts: Sequence[Attempt]) -> AllProvidersFailed:
        """UNAVAILABLE carrying every failed attempt, in order."""
        return AllProvidersFailed([AttemptError(a.model, a.deployment, a.error, a.provider,
                                                a.duration_ms, a.retry, a.kind)
                                   for a in attempts if a.error])

    def _failure(self, attempts: Sequence[Attempt]) -> Exception:
        failed = [a for a in attempts if a.error]
        budget = [a.error for a in failed if a.error.startswith("budget exhausted")]
        if budget and all(a.error.startswith(("budget exhausted", "rate limited (client-side)"))
                          for a in failed):
            return BudgetExceeded(budget[0])  # says what is left and when it resets
        if failed and all(a.error.startswith("rate limited (client-side)") for a in failed):
            return ResourceExhausted("every candidate model is at its rate limit: "
                                     + "; ".join(f"{a.model}: {a.error}" for a in failed))
        return self.all_failed(attempts)

    def _deadline_error(self, attempts: Sequence[Attempt]) -> DeadlineExceeded:
        detail = "; ".join(f"{a.model}@{a.deployment}: {a.error}" for a in attempts if a.error)
        return DeadlineExceeded(f"deadline exceeded after {len(attempts)} attempts ({detail})")


def _compressed(req: CompletionRequest, decision: Decision) -> CompletionRequest:
    """The request as the decision saw it: its compressed prompt is what goes upstream."""
    if decision.compression is None:
        return req
    return replace(req, route=applied(req.route, decision.compression))


def _complete(p: Provider, call: ProviderCall) -> Callable[[float], Awaitable[ProviderResponse]]:
    """One non-streaming upstream call, for `Resilience.call`."""
    async def once(timeout: float) -> ProviderResponse:
        return await p.complete(call, timeout)
    return once


def _first_chunk(p: Provider, call: ProviderCall,
                 ) -> Callable[[float], Awaitable[tuple[StreamChunk, AsyncIterator[StreamChunk]]]]:
    """Open a stream and read its first chunk (the part that may still fail over)."""
    async def first(timeout: float) -> tuple[StreamChunk, AsyncIterator[StreamChunk]]:
        it = p.stream(call, timeout)
        try:
            chunk = await anext(it)
        except StopAsyncIteration as exc:
            raise ProviderError(f"{p.name}: empty stream", kind="stream_cut") from exc
        except BaseException:
            await _close(it)
            raise
        return chunk, it
    return first


async def _close(it: AsyncIterator[StreamChunk]) -> None:
    close = getattr(it, "aclose", None)
    if close is not None:
        await close()
