"""Shadow evaluation: a sampled share of live requests is also answered by a shadow model
(or by the model a candidate router picks), after the caller has its answer, and both
answers are judged.

    shadow:
      model: gpt-4o                 # a fixed shadow model; or
      # router: candidate.yaml      # a candidate config: its router picks the shadow model
      share: 0.05                   # of Complete / CompleteStream (both doors)
      judge: gpt-4o-mini            # grades both answers 0-10; unset: the cheap checks
      max_usd_per_day: 5            # shadow spend cap (UTC day), apart from every budget
      concurrency: 4                # evaluations at once
      queue_size: 1000              # sampled requests waiting; beyond: dropped, counted
      timeout_s: 30                 # one evaluation (shadow answer and judging)

The request path pays one `offer`: a random draw and, when sampled, an append to
a bounded queue (full: dropped, counted, a log line at most once a second). It
never awaits, raises or changes the caller's result. Worker tasks (at most
`concurrency`) take jobs off the queue; each evaluation runs under its own
deadline, on the same providers, breakers and rate limits as live traffic but
holding nothing on the callers' budgets: its worst-case cost is held on the
shadow's own daily counter (state/ledger.py: in this process, or one fleet-wide
counter in Redis under `rc:{%}:shadow:`) and settled with what it really cost;
a hold that does not fit the cap drops the evaluation (`cap`), and with the
state backend down it is dropped too (`state_unavailable`): shadow spend never
runs unbounded.

Judging: with `judge`, the judge model grades each answer (the cascade's judge
prompt); without it, or when a grade is missing, the cascade's cheap checks
(empty, refusal, truncated, hedging, invalid JSON) score a failing answer and
a passing one gets its model's registry quality for the category. When the
shadow side picks the routed model itself nothing is called: the routed answer
is scored once and the outcome is a tie.

Every outcome goes to the audit trail (rpc "Shadow", observe/shadow.py), and
from there to the parity and accuracy gauges, and to each `on_outcome`
subscriber (the quality-regression monitor).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
import time
import weakref
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from routecore.calling.cascade import cheap_checks, judge, judge_for
from routecore.calling.deadline import Deadline
from routecore.calling.ensemble import all_or_none
from routecore.calling.types import Attempt, CompletionRequest, CompletionResult, ModelAnswer, StreamEvent
from routecore.config import Config, ModelSpec, _Reader, load_config
from routecore.domain import Decision
from routecore.errors import ConfigError, RoutecoreError, StateUnavailable
from routecore.observe.record import MAX_ERROR_CHARS, attempt_row
from routecore.observe.shadow import SHADOW_RPC, ShadowOutcome, winner
from routecore.routing.arbitrage import deployments_of, price_of
from routecore.routing.router import Router
from routecore.routing.tokens import count_chat_tokens
from routecore.state.backend import Backend, MemoryBackend, RedisBackend
from routecore.state.budget import NANO, _periods
from routecore.state.ledger import Counter, MemoryLedger, RedisLedger

if TYPE_CHECKING:
    from routecore.calling.completion import Completer

log = structlog.get_logger("routecore.calling.shadow")
KEYS = {"model", "router", "share", "judge", "max_usd_per_day", "concurrency", "queue_size",
        "timeout_s"}
JUDGE_PROMPT_TOKENS = 100  # the judge's instructions around the question and the answer
RecordFn = Callable[[str, str, float, str, BaseException | None, Any], None]
OutcomeHook = Callable[[ShadowOutcome], None]


@dataclass(frozen=True, slots=True)
class ShadowSettings:
    share: float
    max_usd_per_day: float
    model: str = ""  # mode "model"
    candidate: Router | None = None  # mode "router": built from `router_path`
    router_path: str = ""
    judge: str = ""
    concurrency: int = 4
    queue_size: int = 1000
    timeout_s: float = 30.0

    @property
    def mode(self) -> str:
        return "router" if self.candidate is not None else "model"


def parse_shadow(raw: Any, config: Config, problems: list[str]) -> ShadowSettings | None:
    """Validate the `shadow` section (None: off); problems name the exact field. A candidate
    router's config is loaded and built here, so a bad one fails check-config and reload."""
    if raw is None:
        return None
    r, p = _Reader(), "shadow"
    n = r.mapping(raw, p)
    if not n:  # not a mapping, or empty: one problem, not one per missing key
        problems.extend(r.problems or [f"{p}: is empty (set model or router, share and "
                                       "max_usd_per_day)"])
        return None
    r.unknown(n, p, KEYS)
    model = r.get(n, "model", p, str, "") or ""
    router_path = r.get(n, "router", p, str, "") or ""
    if model and router_path:
        r.fail(p, "set model or router, not both")
    elif not model and not router_path:
        r.fail(f"{p}.model", "is required (or shadow.router: a candidate config to route with)")
    if model and model not in config.models:
        r.fail(f"{p}.model", f"unknown model {model[:80]!r}")
    judge_model = r.get(n, "judge", p, str, "") or ""
    if judge_model and judge_model not in config.models:
        r.fail(f"{p}.judge", f"unknown model {judge_model[:80]!r}")
    share = r.number(n, "share", p, lo=0.0, hi=1.0)
    cap = r.number(n, "max_usd_per_day", p, lo=0.0)
    d = ShadowSettings(0.0, 0.0)
    concurrency = r.number(n, "concurrency", p, lo=1, hi=256, integer=True, default=d.concurrency)
    queue_size = r.number(n, "queue_size", p, lo=1, hi=1_000_000, integer=True,
                          default=d.queue_size)
    timeout_s = r.number(n, "timeout_s", p, lo=0.1, hi=3600.0, default=d.timeout_s)
    candidate = _candidate(r, router_path, config) if router_path and not r.problems else None
    problems.extend(r.problems)
    if r.problems:
        return None
    return ShadowSettings(share=share, max_usd_per_day=cap, model=model, candidate=candidate,
                          router_path=router_path, judge=judge_model,
                          concurrency=concurrency, queue_size=queue_size, timeout_s=timeout_s)


def _candidate(r: _Reader, router_path: str, config: Config) -> Router | None:
    """The candidate config's router; its models must be this config's (the shadow calls go
    through this config's endpoints, breakers and prices)."""
    path = Path(router_path)
    if not path.is_absolute() and not config.source.startswith("<"):
        path = Path(config.source).parent / path  # relative to the config file
    try:
        cand = load_config(path)
        unknown = [m for m in cand.models if m not in config.models]
        if unknown:
            r.fail("shadow.router", f"{str(path)[:200]}: models not in this config: "
                                    f"{', '.join(repr(m[:80]) for m in unknown[:5])}")
            return None
        return Router.from_config(cand)
    except ConfigError as exc:
        r.fail("shadow.router", f"{str(path)[:200]}: " + "; ".join(exc.problems[:5]))
    except RoutecoreError as exc:
        r.fail("shadow.router", f"{str(path)[:200]}: {exc.message[:300]}")
    return None


@dataclass(frozen=True, slots=True)
class _Job:
    completer: Completer
    settings: ShadowSettings
    req: CompletionRequest
    decision: Decision
    model: str  # the model that answered the caller
    text: str
    finish_reason: str
    cost_usd: float
    output_tokens: int


class ShadowRunner:
    """One per serving process: sampling, the bounded queue, the workers and the daily cap.

    The server sets `record` (the audit recorder's put; None: no audit trail) and
    points each Completer's `shadow` at it; subscribers append to `on_outcome`.
    """

    def __init__(self, state: Backend | None = None, *, record: RecordFn | None = None,
                 rng: random.Random | None = None) -> None:
        backend = state if state is not None else MemoryBackend()
        self._ledger: MemoryLedger | RedisLedger = (
            RedisLedger(backend, prefix="shadow") if isinstance(backend, RedisBackend)
            else MemoryLedger(backend))
        self._clock = backend.clock
        self.record = record
        self.on_outcome: list[OutcomeHook] = []
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[_Job] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._views: weakref.WeakKeyDictionary[Completer, Completer] = \
            weakref.WeakKeyDictionary()
        self._rid = 0
        self._closed = False
        # Plain counts (metrics read them through a probe at each audit flush).
        self.sampled = self.completed = self.in_flight = 0
        self.dropped: Tally[str] = Tally()
        self._reported: Tally[str] = Tally()
        self._last_log: dict[str, float] = {}

    # -- the request path --------------------------------------------------------------

    def offer(self, completer: Completer, req: CompletionRequest,
              result: CompletionResult | StreamEvent, text: str) -> None:
        """Maybe queue a shadow evaluation of this answer. Never blocks, never raises."""
        try:
            self._offer(completer, req, result, text)
        except Exception:  # the caller's answer is already made: a shadow bug must not cost it
            log.exception("shadow offer failed", request_id=result.request_id)

    def _offer(self, completer: Completer, req: CompletionRequest,
               result: CompletionResult | StreamEvent, text: str) -> None:
        settings = completer.settings.shadow
        if settings is None or self._closed or result.decision is None:
            return
        if settings.share < 1.0 and self._rng.random() >= settings.share:
            return
        self.sampled += 1
        queue = self._queue
        if queue is None:
            queue = self._queue = asyncio.Queue()
        if queue.qsize() >= settings.queue_size:
            self._drop("queue_full", queue_size=settings.queue_size)
            return
        usage = result.usage
        queue.put_nowait(_Job(completer, settings, req, result.decision, result.model, text,
                              result.finish_reason, result.cost_usd,
                              usage.output_tokens if usage is not None else 0))
        while len(self._workers) < settings.concurrency:
            self._workers.append(asyncio.ensure_future(self._worker(queue)))

    def _drop(self, reason: str, **fields: Any) -> None:
        self.dropped[reason] += 1
        now = time.monotonic()
        every = 60.0 if reason == "cap" else 1.0
        if now - self._last_log.get(reason, -every) >= every:
            self._last_log[reason] = now
            log.warning("shadow evaluation dropped", reason=reason,
                        dropped_total=self.dropped[reason], **fields)

    def take_dropped(self) -> dict[str, int]:
        """Drops per reason since the last call (for the metrics probe)."""
        out = {k: v - self._reported[k] for k, v in self.dropped.items()
               if v != self._reported[k]}
        self._reported.update(out)
        return out

    # -- the workers ---------------------------------------------------------------------

    async def _worker(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            self.in_flight += 1
            try:
                await self._evaluate(job)
            except Exception:  # a worker outlives any one evaluation
                log.exception("shadow evaluation failed", request_id=job.decision.request_id)
            finally:
                self.in_flight -= 1
                queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued evaluation has finished (tests, benchmarks)."""
        if self._queue is not None:
            await self._queue.join()

    async def aclose(self) -> None:
        """Stop: queued evaluations are dropped, running ones cancelled (their holds expire)."""
        self._closed = True
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()

    def _unbilled(self, completer: Completer) -> Completer:
        """`completer` without the callers' budgets (same providers, breakers, rate limits):
        shadow spend is held on its own cap, never on a caller's."""
        view = self._views.get(completer)
        if view is None:
            view = copy.copy(completer)
            view.budgets = None
            view.shadow = None
            self._views[completer] = view
        return view

    # -- one evaluation --------------------------------------------------------------------

    async def _evaluate(self, job: _Job) -> None:
        t0 = time.perf_counter()
        s, d = job.settings, job.decision
        caller = self._unbilled(job.completer)
        sreq = CompletionRequest(job.req.route, max_output_tokens=job.req.max_output_tokens,
                                 temperature=job.req.temperature, json_mode=job.req.json_mode)
        deadline = Deadline.after(s.timeout_s)
        attempts: list[Attempt] = []
        fields: dict[str, Any] = {}
        spend = [0.0, 0.0]  # shadow answer, judge calls
        if s.candidate is not None:
            try:
                picked = s.candidate.route(job.req.route)
            except RoutecoreError as exc:
                self._finish(job, t0, "", attempts, spend, status=exc.status,
                             error=f"candidate router: {exc.message}")
                return
            chain = [m for m in caller.chain(picked) if m in caller.config.models]
            fields["candidate_router_version"] = picked.router_version
        else:
            chain = [s.model]
        allow = sreq.route.constraints.allow_models
        if allow:  # a caller limited to some models (its key's list): its prompt goes no further
            chain = [m for m in chain if m in allow]
            if not chain:
                self.dropped["caller_not_allowed"] += 1  # by design: counted, not logged
                return
        shadow_model = chain[0] if chain else ""
        same = shadow_model == job.model
        hold = await self._reserve(s, caller, sreq, d, [] if same else chain, job.output_tokens)
        if hold is None:
            return
        try:
            answer: ModelAnswer | None = None
            if not same:
                answer = await caller.call_models(chain, sreq, d, deadline, attempts)
                shadow_model = answer.model
                spend[0] = answer.cost_usd
                fields.update(input_tokens=answer.usage.input_tokens,
                              output_tokens=answer.usage.output_tokens)
            scores = await self._judge(s, caller, sreq, d, job, answer, deadline, attempts,
                                       spend, fields)
            fields.update(routed_score=scores[0], shadow_score=scores[1],
                          winner=winner(*scores))
            self._finish(job, t0, shadow_model, attempts, spend, **fields)
        except RoutecoreError as exc:
            self._finish(job, t0, shadow_model, attempts, spend, status=exc.status,
                         error=exc.message, **fields)
        finally:
            await self._settle(hold, spend[0] + spend[1])

    async def _judge(self, s: ShadowSettings, caller: Completer, sreq: CompletionRequest,
                     d: Decision, job: _Job, answer: ModelAnswer | None, deadline: Deadline,
                     attempts: list[Attempt], spend: list[float],
                     fields: dict[str, Any]) -> tuple[float, float]:
        """(routed score, shadow score) in [0, 1]; `answer` None: the shadow side is the
        routed answer itself."""
        answers = [(job.model, job.text, job.finish_reason)]
        if answer is not None:
            answers.append((answer.model, answer.text, answer.finish_reason))
        grades: list[float | None] = [None] * len(answers)
        # Never a judge outside the caller's allow list: the cheap checks score both then.
        judge_model = judge_for(sreq, s.judge)
        if judge_model:
            logs: list[list[Attempt]] = [[] for _ in answers]
            try:
                graded = await all_or_none([
                    judge(caller, judge_model, sreq, d, text, deadline, logs[i])
                    for i, (_m, text, _f) in enumerate(answers)])
            finally:
                for part in logs:
                    attempts.extend(part)
            grades = [g for g, _ in graded]
            spend[1] = sum(j.cost_usd for _, j in graded if j is not None)
            fields["judge_model"] = s.judge
        if all(g is not None for g in grades):
            fields["judged_by"] = "judge"
            scores = [float(g) for g in grades if g is not None]
        else:  # no judge, or one grade missing: both by the same measure
            fields["judged_by"] = "cheap_checks"
            scores = [self._cheap(caller.config, m, text, finish, sreq.json_mode, d.category)
                      for m, text, finish in answers]
        if answer is None:
            fields["judged_by"] = "same_model"
            return scores[0], scores[0]
        return scores[0], scores[1]

    @staticmethod
    def _cheap(config: Config, model: str, text: str, finish: str, json_mode: bool,
               category: str) -> float:
        failed = cheap_checks(text, finish, json_mode)
        if failed is not None:
            return failed[0]
        spec = config.models.get(model)
        return spec.quality_for(category) if spec is not None else 0.0

    def _finish(self, job: _Job, t0: float, shadow_model: str, attempts: Sequence[Attempt],
                spend: list[float], *, status: str = "OK", error: str = "",
                **fields: Any) -> None:
        d, route = job.decision, job.req.route
        outcome = ShadowOutcome(
            ts=time.time(), request_id=d.request_id, tenant=route.tenant, user=route.user,
            key_id=route.key_id, category=d.category, strategy=d.strategy,
            router_version=d.router_version, routed_model=job.model,
            routed_model_version=d.model_version if job.model == d.model else "",
            routed_cost_usd=job.cost_usd, mode=job.settings.mode, shadow_model=shadow_model,
            status=status, error=error[:MAX_ERROR_CHARS], shadow_cost_usd=spend[0],
            judge_cost_usd=spend[1], latency_ms=(time.perf_counter() - t0) * 1000.0,
            attempts=tuple(attempt_row(a) for a in attempts), **fields)
        self.completed += 1
        if self.record is not None:
            self.record(SHADOW_RPC, d.request_id, t0, status, None, outcome)
        log.debug("shadow_outcome", request_id=d.request_id, routed=job.model,
                  shadow=shadow_model, winner=outcome.winner, status=status,
                  spend_usd=outcome.spend_usd)
        for hook in self.on_outcome:
            try:
                hook(outcome)
            except Exception:  # a subscriber's bug must not stop shadow evaluation
                log.exception("shadow on_outcome hook failed", hook=getattr(hook, "__name__", ""))

    # -- the daily cap ---------------------------------------------------------------------

    def _counter(self, s: ShadowSettings) -> Counter:
        day, day_end, _month, _next = _periods(self._clock())
        return Counter(f"usd:day:{day}", round(s.max_usd_per_day * NANO),
                       day_end + int(s.timeout_s) + 3600)

    async def _reserve(self, s: ShadowSettings, caller: Completer, sreq: CompletionRequest,
                       d: Decision, chain: Sequence[str],
                       routed_out: int) -> tuple[Counter, str] | None:
        """Hold the evaluation's worst case on the daily cap; None: dropped."""
        models = caller.config.models
        n_in = d.input_tokens or count_chat_tokens(sreq.messages())
        worst, out = 0.0, routed_out
        for m in chain:
            spec = models[m]
            max_out = caller.max_output_tokens(sreq, spec)
            worst = max(worst, _dearest(spec, n_in, max_out))
            out = max(out, max_out)
        if s.judge:
            n_judged = 1 if not chain else 2
            worst += n_judged * _dearest(models[s.judge], n_in + out + JUDGE_PROMPT_TOKENS, 8)
        counter = self._counter(s)
        self._rid += 1
        rid = f"shadow-{id(self):x}-{self._rid:x}"
        try:
            refused, used = await self._ledger.reserve(
                "", rid, [counter], [int(worst * NANO) + 1],
                self._clock() + s.timeout_s + 60.0)
        except StateUnavailable:
            self._drop("state_unavailable")
            return None
        if refused >= 0:
            self._drop("cap", max_usd_per_day=s.max_usd_per_day,
                       spent_usd=round(used[0] / NANO, 6))
            return None
        return counter, rid

    async def _settle(self, hold: tuple[Counter, str], usd: float) -> None:
        counter, rid = hold
        try:
            await self._ledger.settle("", rid, [counter], [round(max(0.0, usd) * NANO)])
        except StateUnavailable:
            log.warning("shadow spend not recorded: state backend down", usd=usd)

    async def spent_today(self, settings: ShadowSettings) -> float:
        """Shadow spend settled today (UTC), in USD."""
        spent, _reserved = (await self._ledger.read("", [self._counter(settings)]))[0]
        return spent / NANO


def _dearest(spec: ModelSpec, input_tokens: int, output_tokens: int) -> float:
    """The most a call of `spec` can cost: at the dearest deployment it may fail over to
    (the model's price is its cheapest seller's)."""
    return max(price_of(spec, d).cost(input_tokens, output_tokens)
               for d in deployments_of(spec))
