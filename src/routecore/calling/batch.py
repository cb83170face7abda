"""Deferred completions: CompleteBatch submits through the providers' batch APIs, GetBatch polls.

    jobs = BatchJobs(config, router, completer.providers)
    job = await jobs.submit([CompletionRequest(RouteRequest(prompt=p)) for p in prompts],
                            owner="acme")
    job = await jobs.get(job.job_id, owner="acme")      # in_progress ... completed

Every request is routed as `Route` would route it, among the models that have
a deployment on an endpoint with a batch API (an explicit `allow_models` is
narrowed to those). Requests are grouped by endpoint and each group is
uploaded as one JSONL batch (see `providers.batch_api`). A job is
`in_progress` until every group is terminal, then `completed` (items that
failed carry their error) or `failed` (none succeeded). Each answer costs its
model's batch price (`price.batch_discount` off, long-context tier included);
the job also reports what the same tokens cost at the standard price.

With budgets on, each item holds its worst-case batch cost when submitted (an item
over the caller's cap fails with RESOURCE_EXHAUSTED) and is charged its real batch
cost when its result arrives.

Jobs belong to their owner (the caller's tenant with auth on): any other
owner's lookup is NOT_FOUND, the same answer as an id that never existed.
Jobs are kept in this process's memory (bounded, oldest dropped first); with
several serving processes, poll the one that accepted the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import structlog

from routecore.calling.cache import check_request
from routecore.calling.providers import BatchAPI, Provider, ProviderCall, batch_api
from routecore.calling.providers.batch_api import TERMINAL, LineResult
from routecore.calling.types import CompletionRequest, Usage
from routecore.config import Config, Price
from routecore.domain import Decision, RouteRequest
from routecore.errors import InvalidRequest, NotFound, ProviderError, RoutecoreError, echo
from routecore.routing.arbitrage import price_of
from routecore.routing.batch import item_error, route_batch
from routecore.routing.router import Router
from routecore.state.budget import Budgets, Hold

log = structlog.get_logger("routecore.batch")
MAX_JOBS = 10_000
SUBMIT_TIMEOUT_S = 60.0
SETTLE_S = 60.0  # how often the process polls unfinished jobs nobody polled (charging them)
BATCH_HOLD_S = 25 * 3600.0  # a budget hold outlives the upstream's 24 h completion window


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One request's outcome: an answer, an error (`error_code` a gRPC status name), or
    neither yet (still running upstream)."""

    index: int
    request_id: str = ""
    model: str = ""
    provider: str = ""
    text: str = ""
    finish_reason: str = ""
    usage: Usage | None = None
    cost_usd: float = 0.0
    standard_cost_usd: float = 0.0
    error_code: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class BatchJob:
    job_id: str
    status: str  # in_progress | completed | failed
    created_at: float
    total: int
    items: tuple[BatchItem, ...]  # in request order

    @property
    def succeeded(self) -> int:
        return sum(1 for i in self.items if i.usage is not None and not i.error_code)

    @property
    def failed(self) -> int:
        return sum(1 for i in self.items if i.error_code)

    @property
    def cost_usd(self) -> float:
        return sum(i.cost_usd for i in self.items)

    @property
    def standard_cost_usd(self) -> float:
        return sum(i.standard_cost_usd for i in self.items)


@dataclass(frozen=True, slots=True)
class BatchDone:
    """A job whose every item has an outcome, for the audit trail: the items and each
    item's request as its caller was allowed to send it (tenant, user and key)."""

    job: BatchJob
    requests: tuple[RouteRequest, ...]
    finished_at: float  # unix seconds


@dataclass(slots=True)
class _Group:
    """One upstream batch: an endpoint's share of a job."""

    endpoint: str
    api: BatchAPI
    batch_id: str
    indexes: list[int]
    status: str = "in_progress"


@dataclass(slots=True)
class _Job:
    id: str
    owner: str
    created_at: float
    items: list[BatchItem]
    # As submitted: these prices settle the job, whatever a reload changes.
    route_to: Mapping[str, tuple[str, str, Price]]
    groups: list[_Group] = field(default_factory=list)
    holds: dict[int, Hold] = field(default_factory=dict)  # item -> its budget hold
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    routes: list[RouteRequest] = field(default_factory=list)  # per item, as scoped
    reported: bool = False  # handed to BatchJobs.on_done

    def snapshot(self) -> BatchJob:
        if any(g.status not in TERMINAL for g in self.groups):
            status = "in_progress"
        else:
            status = "completed" if any(not i.error_code for i in self.items) else "failed"
        return BatchJob(self.id, status, self.created_at, len(self.items), tuple(self.items))


@dataclass(frozen=True, slots=True)
class _Binding:
    """What new jobs are routed and submitted with; replaced whole by a reload."""

    config: Config
    router: Router
    apis: Mapping[str, BatchAPI]
    # Model -> its cheapest deployment on a batch-capable endpoint (first on a tie):
    # (endpoint, model_id, that deployment's price).
    route_to: Mapping[str, tuple[str, str, Price]]
    batchable: frozenset[str]

    @classmethod
    def of(cls, config: Config, router: Router, providers: Mapping[str, Provider]) -> _Binding:
        apis = {name: api for name, p in providers.items() if (api := batch_api(p)) is not None}
        route_to: dict[str, tuple[str, str, Price]] = {}
        for name, spec in config.models.items():
            priced = [(price_of(spec, d).cost(1000, 1000, batch=True), i, d)
                      for i, d in enumerate(spec.deployments) if d.endpoint in apis]
            if priced:
                dep = min(priced)[2]
                route_to[name] = (dep.endpoint, dep.model_id, price_of(spec, dep))
        return cls(config, router, apis, route_to, frozenset(route_to))


class BatchJobs:
    """Submits and tracks batch jobs; one per serving process."""

    def __init__(self, config: Config, router: Router, providers: Mapping[str, Provider],
                 budgets: Budgets | None = None, max_jobs: int = MAX_JOBS) -> None:
        self.budgets = budgets if budgets is not None and budgets.enabled else None
        self.rebind(config, router, providers)
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._max_jobs = max_jobs
        self.settle_s = SETTLE_S
        self._settler: asyncio.Task[None] | None = None
        # Called once per job when its last item has an outcome (the server's audit trail).
        self.on_done: Callable[[BatchDone], None] | None = None

    def _unfinished(self) -> list[_Job]:
        return [j for j in self._jobs.values() if any(g.status not in TERMINAL for g in j.groups)]

    async def _settle_unpolled(self) -> None:
        """Poll unfinished jobs every `settle_s` until none is left: an item is charged to
        its caller's budget when its answer arrives even if the caller never polls (or
        polls another worker), instead of its hold expiring uncharged."""
        while self._unfinished():
            await asyncio.sleep(self.settle_s)
            for job in self._unfinished():
                try:
                    await self.get(job.id, job.owner)
                except Exception:  # the settler outlives any one job's trouble
                    log.exception("batch settle failed", job_id=job.id)

    async def aclose(self) -> None:
        """Stop polling (holds of jobs still running expire with their TTL)."""
        if self._settler is not None:
            self._settler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._settler
            self._settler = None

    def rebind(self, config: Config, router: Router, providers: Mapping[str, Provider]) -> None:
        """Submit new jobs with this config (a reload), in one swap. A job already submitted
        keeps its upstream batch APIs and the prices it was submitted at."""
        self._binding = _Binding.of(config, router, providers)

    @staticmethod
    def _narrow(b: _Binding, req: RouteRequest) -> RouteRequest:
        """Route only among models that can be batched."""
        allow = req.constraints.allow_models
        fit = (allow & b.batchable) if allow else b.batchable
        if not fit:
            raise InvalidRequest(
                "constraints.allow_models: none of the allowed models has an endpoint with a "
                f"batch API (batchable: {', '.join(sorted(b.batchable)) or 'none'})")
        return replace(req, constraints=replace(req.constraints, allow_models=fit))

    async def submit(self, requests: Sequence[CompletionRequest], owner: str = "",
                     scope: Callable[[RouteRequest], RouteRequest] | None = None) -> BatchJob:
        """Route every request and submit one upstream batch per endpoint."""
        for i, r in enumerate(requests):
            if r.max_output_tokens < 0 or not 0.0 <= r.temperature <= 2.0:
                raise InvalidRequest(f"requests[{i}]: max_output_tokens must be >= 0 and "
                                     f"temperature in [0, 2]")
            if r.cascade or r.ensemble_size > 1:
                raise InvalidRequest(f"requests[{i}]: cascade and ensemble need answers at once; "
                                     "use Complete for them")
            # Batch answers never come from nor go to the response cache; a bad policy is
            # still the caller's mistake to hear about, not to have ignored.
            check_request(r.cache, r.cache_max_age_s, prefix=f"requests[{i}].")

        b = self._binding  # one config for the whole job, whatever a reload does meanwhile

        def prepare(req: RouteRequest) -> RouteRequest:
            return self._narrow(b, scope(req) if scope is not None else req)

        decisions = route_batch(b.router, [r.route for r in requests], scope=prepare)
        job = _Job(f"batch-{secrets.token_hex(16)}", owner, time.time(),
                   [BatchItem(i) for i in range(len(requests))], b.route_to)
        job.routes = [self._who(r.route, scope, owner) for r in requests]
        by_endpoint: dict[str, list[tuple[str, ProviderCall]]] = {}
        for i, (req, d) in enumerate(zip(requests, decisions, strict=True)):
            if not isinstance(d, Decision):
                job.items[i] = BatchItem(i, error_code=d.status, error=item_error(i, d))
                continue
            spec = b.config.models[d.model]
            endpoint, model_id, price = b.route_to[d.model]
            max_out = min(req.max_output_tokens or req.route.constraints.max_output_tokens
                          or b.config.routing.default_output_tokens, spec.max_output_tokens)
            try:
                # The caller as auth proved it (its key's tenant), not the item's own fields.
                who = job.routes[i]
                await self._hold(job, i, who, price.cost(
                    d.input_tokens, max_out, batch=True), d.input_tokens + max_out)
            except RoutecoreError as exc:  # over budget, or budgets unavailable
                job.items[i] = BatchItem(i, request_id=d.request_id, model=d.model,
                                         error_code=exc.status, error=item_error(i, exc))
                continue
            by_endpoint.setdefault(endpoint, []).append((str(i), ProviderCall(
                d.model, model_id, req.messages(), max_out, req.temperature, req.json_mode,
                False, d.request_id)))
            job.items[i] = BatchItem(i, request_id=d.request_id, model=d.model,
                                     provider=spec.provider)
        for endpoint, lines in by_endpoint.items():
            api = b.apis[endpoint]
            indexes = [int(cid) for cid, _ in lines]
            try:
                bid = await api.submit(lines, SUBMIT_TIMEOUT_S)
            except ProviderError as exc:
                for i in indexes:
                    job.items[i] = replace(job.items[i], error_code="UNAVAILABLE",
                                           error=f"requests[{i}]: batch submit to {endpoint} "
                                                 f"failed: {exc.message}"[:1000])
                    await self._charge(job, i, 0.0, 0)
                continue
            job.groups.append(_Group(endpoint, api, bid, indexes))
        self._jobs[job.id] = job
        while len(self._jobs) > self._max_jobs:
            self._jobs.popitem(last=False)
        if job.groups and (self._settler is None or self._settler.done()):
            self._settler = asyncio.get_running_loop().create_task(self._settle_unpolled())
        snap = job.snapshot()
        self._report(job, snap)
        return snap

    @staticmethod
    def _who(route: RouteRequest, scope: Callable[[RouteRequest], RouteRequest] | None,
             owner: str) -> RouteRequest:
        """The item's request as its caller may send it; one its key refuses (another
        tenant's) is the owner's, as the audit trail records it."""
        if scope is None:
            return route
        try:
            return scope(route)
        except RoutecoreError:
            return replace(route, tenant=owner)

    def _report(self, job: _Job, snap: BatchJob) -> None:
        """Hand a finished job to `on_done`, once."""
        if job.reported or snap.status == "in_progress" or self.on_done is None:
            return
        job.reported = True
        try:
            self.on_done(BatchDone(snap, tuple(job.routes), time.time()))
        except Exception:  # the audit trail's trouble is not the caller's
            log.exception("batch on_done failed", job_id=job.id)

    async def get(self, job_id: str, owner: str = "") -> BatchJob:
        """The job's state, polling its unfinished upstream batches once."""
        job = self._jobs.get(job_id)
        if job is None or job.owner != owner:
            raise NotFound(f"job_id: {echo(job_id)} is not a batch job of this caller")
        async with job.lock:  # concurrent polls of one job read the upstream once
            for g in job.groups:
                if g.status in TERMINAL:
                    continue
                try:
                    b = await g.api.poll(g.batch_id, SUBMIT_TIMEOUT_S)
                except ProviderError as exc:
                    if exc.retryable:
                        continue  # the upstream is briefly away: still in progress
                    await self._fail(job, g, f"upstream batch {g.batch_id}: {exc.message}")
                    g.status = "failed"
                    continue
                g.status = b.status
                if b.status in TERMINAL:
                    await self._settle(job, g, b.results, b.error or b.status)
            snap = job.snapshot()
            self._report(job, snap)
        return snap

    async def _settle(self, job: _Job, g: _Group, results: Sequence[LineResult],
                      why: str) -> None:
        """Fill the group's items from the upstream results (a missing one is an error)."""
        seen: set[int] = set()
        wanted = set(g.indexes)
        for r in results:
            if not r.custom_id.isdigit() or int(r.custom_id) not in wanted:
                continue  # not ours: an upstream cannot write into other items
            i = int(r.custom_id)
            seen.add(i)
            item, resp = job.items[i], r.response
            if resp is None:
                job.items[i] = replace(item, error_code="UNAVAILABLE",
                                       error=f"requests[{i}]: {r.error}"[:1000])
                await self._charge(job, i, 0.0, 0)
                continue
            usage = resp.usage or Usage()
            price = job.route_to[item.model][2]
            cost = price.cost(usage.input_tokens, usage.output_tokens, batch=True)
            job.items[i] = replace(
                item, text=resp.text, finish_reason=resp.finish_reason, usage=usage,
                cost_usd=cost, standard_cost_usd=price.cost(usage.input_tokens,
                                                            usage.output_tokens))
            await self._charge(job, i, cost, usage.input_tokens + usage.output_tokens)
        missing = wanted - seen
        if missing:
            await self._fail(job, _Group(g.endpoint, g.api, g.batch_id, sorted(missing)),
                             f"upstream batch {g.batch_id} ended {why} without this request's "
                             "result")

    async def _fail(self, job: _Job, g: _Group, why: str) -> None:
        for i in g.indexes:
            if not job.items[i].error_code and job.items[i].usage is None:
                job.items[i] = replace(job.items[i], error_code="UNAVAILABLE",
                                       error=f"requests[{i}]: {why}"[:1000])
                await self._charge(job, i, 0.0, 0)

    # -- budgets: a hold per item at submit, settled with the batch cost at the end --------

    async def _hold(self, job: _Job, i: int, r: RouteRequest, usd: float, tokens: int) -> None:
        """Hold item i's worst-case batch cost on the caller's budgets (raises when over),
        for as long as an upstream batch may take, so the cap stays exact meanwhile."""
        if self.budgets is None:
            return
        hold = await self.budgets.reserve(r.tenant, r.user, r.key_id, usd, tokens,
                                          hold_s=BATCH_HOLD_S)
        if hold is not None:
            job.holds[i] = hold

    async def _charge(self, job: _Job, i: int, usd: float, tokens: int) -> None:
        hold = job.holds.pop(i, None)
        if hold is not None and self.budgets is not None:
            await self.budgets.settle(hold, usd, tokens)

