"""The Router service: protobuf in, domain call, protobuf out. Nothing else.

Errors are not caught here: the interceptor maps them to statuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from routecore.calling.batch import BatchJobs
from routecore.calling.completion import Completer
from routecore.calling.deadline import Deadline
from routecore.domain import Decision, RouteRequest
from routecore.errors import ConfigError
from routecore.learned.outcomes import Outcomes
from routecore.routing.batch import check_batch_size, route_batch
from routecore.routing.router import Router
from routecore.server import convert
from routecore.server.interceptors import identity_var, log_fields_var, request_id_var
from routecore.server.records import Trace, trace_var
from routecore.server.reload import Reloader
from routecore.state.budget import Budgets
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc as pb_grpc


def _owner() -> str:
    """Whose request ids these are: the caller's tenant with auth on, else everyone's."""
    ident = identity_var.get()
    return ident.tenant if ident is not None else ""


class RouterServicer(pb_grpc.RouterServicer):  # type: ignore[misc]
    def __init__(self, router: Router, completer: Completer, outcomes: Outcomes,
                 budgets: Budgets) -> None:
        self.router = router
        self.completer = completer
        self.outcomes = outcomes
        self.batches = BatchJobs(router.config, router, completer.providers, budgets)
        self.budgets = budgets
        self.reloader: Reloader | None = None  # set by the app once started

    def _scoped(self, req: RouteRequest) -> RouteRequest:
        """With auth on, the request as the caller's key allows it (tenant, user, models)."""
        ident = identity_var.get()
        if ident is None:
            return req
        return ident.scope(req, self.router.config.routing.default_strategy)

    async def Route(self, request: pb.RouteRequest, context: Any) -> pb.RouteDecision:
        req = self._scoped(convert.route_request(request, request_id_var.get()))
        trace = Trace(req)
        trace_var.set(trace)
        llm = self.completer.llm_classifier  # classifier.mode llm or cascade
        decision = trace.decision = (self.router.route(req) if llm is None else
                                     await llm.route(req, Deadline.from_grpc(context)))
        self.outcomes.record(decision, req.text(), owner=_owner())
        log_fields_var.get({}).update(model=decision.model, category=decision.category,
                                      decision_us=decision.decision_micros,
                                      variant=decision.variant)
        return convert.decision(decision, with_candidates=request.explain)

    async def RouteBatch(self, request: pb.RouteBatchRequest,
                         context: Any) -> pb.RouteBatchResponse:
        check_batch_size(len(request.requests), request.explain)
        reqs = [convert.route_request(r) for r in request.requests]
        trace = Trace(reqs)
        trace_var.set(trace)
        results = route_batch(self.router, reqs, request.explain, scope=self._scoped,
                              scoped=reqs)
        trace.result = results
        ident = identity_var.get()
        if ident is not None:  # an item refused by its key is audited as the key's caller
            for i, r in enumerate(results):
                if not isinstance(r, Decision) and reqs[i].key_id != ident.key_id:
                    reqs[i] = replace(reqs[i], tenant=ident.tenant, user=ident.user,
                                      key_id=ident.key_id)
        owner = _owner()
        for req, r in zip(reqs, results, strict=True):
            if isinstance(r, Decision):
                self.outcomes.record(r, req.text(), owner=owner)
        response = convert.route_batch(results, request.explain)
        log_fields_var.get({}).update(items=len(reqs), item_errors=len(response.errors))
        return response

    async def CompleteBatch(self, request: pb.CompleteBatchRequest, context: Any) -> pb.BatchJob:
        check_batch_size(len(request.requests))
        reqs = [convert.completion_request(r, "") for r in request.requests]
        job = await self.batches.submit(reqs, owner=_owner(), scope=self._scoped)
        log_fields_var.get({}).update(job_id=job.job_id, items=job.total, item_errors=job.failed)
        return convert.batch_job(job)

    async def GetBatch(self, request: pb.GetBatchRequest, context: Any) -> pb.BatchJob:
        job = await self.batches.get(request.job_id, owner=_owner())
        log_fields_var.get({}).update(job_id=job.job_id, status=job.status)
        return convert.batch_job(job)

    async def ListModels(self, request: pb.ListModelsRequest, context: Any) -> pb.ListModelsResponse:
        ident = identity_var.get()
        allowed = ident.models if ident is not None else frozenset()
        return pb.ListModelsResponse(
            models=[convert.model_info(s, self.completer.rollouts.shares(s),
                                       self.completer.rollouts.version_state(s))
                    for s in self.router.registry
                    if not allowed or s.name in allowed],
            router_version=self.router.version,
        )

    async def Complete(self, request: pb.CompleteRequest, context: Any) -> pb.CompleteResponse:
        req = convert.completion_request(request, request_id_var.get())
        req = replace(req, route=self._scoped(req.route))
        trace = Trace(req)
        trace_var.set(trace)
        result = trace.result = await self.completer.complete(req, Deadline.from_grpc(context))
        if result.decision is not None:
            self.outcomes.record(result.decision, req.route.text(), result.cost_usd,
                                 owner=_owner())
        log_fields_var.get({}).update(
            model=result.model, attempts=len(result.attempts), cost_usd=result.cost_usd,
            input_tokens=result.usage.input_tokens, output_tokens=result.usage.output_tokens)
        return convert.completion_result(result)

    async def CompleteStream(self, request: pb.CompleteRequest,
                             context: Any) -> AsyncIterator[pb.CompleteChunk]:
        req = convert.completion_request(request, request_id_var.get())
        req = replace(req, route=self._scoped(req.route))
        trace = Trace(req)
        trace_var.set(trace)
        async for event in self.completer.stream(req, Deadline.from_grpc(context)):
            if event.done:
                trace.result = event
                log_fields_var.get({}).update(
                    model=event.model, attempts=len(event.attempts), cost_usd=event.cost_usd,
                    output_tokens=event.usage.output_tokens if event.usage else 0)
            yield convert.stream_event(event)

    async def Feedback(self, request: pb.FeedbackRequest, context: Any) -> pb.FeedbackResponse:
        ident = identity_var.get()
        trace = Trace({"request_id": request.request_id, "prompt": request.prompt,
                       "model": request.model, "score": request.score, "source": request.source,
                       "tenant": ident.tenant if ident else "", "user": ident.user if ident else "",
                       "key_id": ident.key_id if ident else ""})
        trace_var.set(trace)
        if ident is not None and request.model:
            ident.check_model(request.model, "feedback.model")
        result = await self.outcomes.feedback(
            request_id=request.request_id, prompt=request.prompt, model=request.model,
            score=request.score, comment=request.comment, source=request.source,
            owner=_owner())
        trace.result = {"feedback_id": result.feedback_id, "learned": result.learned}
        log_fields_var.get({}).update(model=request.model, learned=result.learned)
        return pb.FeedbackResponse(feedback_id=result.feedback_id, learned=result.learned)

    async def GetBudget(self, request: pb.BudgetRequest, context: Any) -> pb.BudgetStatus:
        # With auth on, only the caller's own tenant (and user) as its key allows.
        ident = self._scoped(convert.budget_request(request, request_id_var.get()))
        windows = await self.budgets.status(ident.tenant, ident.user, ident.key_id)
        log_fields_var.get({}).update(windows=len(windows))
        return convert.budget_status(ident.tenant, ident.user, windows)

    async def Reload(self, request: pb.ReloadRequest, context: Any) -> pb.ReloadResponse:
        ident = identity_var.get()
        if ident is not None:  # auth on: admin keys only
            ident.require_admin("reload")
        if self.reloader is None:
            raise ConfigError(["config: this server has no config file to re-read"])
        done = await self.reloader.reload(dry_run=request.dry_run, signal_peers=True)
        log_fields_var.get({}).update(router_version=done.router_version, applied=done.applied)
        return convert.reloaded(done)
