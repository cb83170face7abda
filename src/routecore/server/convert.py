"""Protobuf <-> domain conversion, in one place. Domain code never sees `*_pb2`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from routecore.calling.batch import BatchJob
from routecore.calling.cache import client_hit
from routecore.calling.types import (
    Attempt,
    CascadeStep,
    CompletionRequest,
    CompletionResult,
    StreamEvent,
    Usage,
)
from routecore.config import Deployment, ModelSpec, ModelVersion
from routecore.domain import (
    NO_CONSTRAINTS,
    BudgetState,
    CandidateTable,
    ClassifierReport,
    Compression,
    CompressSpec,
    Constraints,
    Decision,
    Message,
    ModelLoad,
    RouteRequest,
    Weights,
    check_request_id,
)
from routecore.errors import RoutecoreError
from routecore.routing.arbitrage import deployments_of, price_of
from routecore.routing.batch import item_error
from routecore.state.budget import WindowStatus
from routecore.v1 import router_pb2 as pb

if TYPE_CHECKING:
    from routecore.server.reload import Reloaded


def _limit(value: float) -> float | None:
    # proto3 scalars default to 0, which means "no limit"; negatives and NaN pass
    # through so the router rejects them with a message naming the field.
    return None if value == 0 else value


def route_request(msg: pb.RouteRequest, request_id: str = "") -> RouteRequest:
    """The domain request; `request_id` (from call metadata) fills an empty one."""
    c = msg.constraints
    constraints = NO_CONSTRAINTS if not msg.HasField("constraints") else Constraints(
        max_cost_usd=_limit(c.max_cost_usd),
        max_latency_ms=_limit(c.max_latency_ms),
        min_quality=_limit(c.min_quality),
        required_capabilities=frozenset(c.required_capabilities),
        allow_models=frozenset(c.allow_models),
        deny_models=frozenset(c.deny_models),
        max_output_tokens=c.max_output_tokens or None,
    )
    weights = None
    if msg.weight_quality or msg.weight_cost or msg.weight_latency:
        weights = Weights(quality=msg.weight_quality, cost=msg.weight_cost,
                          latency=msg.weight_latency)
    return RouteRequest(
        prompt=msg.prompt,
        messages=tuple(Message(m.role, m.content) for m in msg.messages),
        tenant=msg.tenant,
        user=msg.user,
        strategy=msg.strategy,
        constraints=constraints,
        request_id=check_request_id(msg.request_id) if msg.request_id else request_id,
        willingness_to_pay=msg.willingness_to_pay if msg.HasField("willingness_to_pay") else None,
        weights=weights,
        compress=_compress(msg.compress) if msg.HasField("compress") else None,
    )


def _compress(c: pb.Compress) -> CompressSpec:
    # Presence, not zero, says what was given: target_ratio 0 is refused by the router.
    return CompressSpec(
        target_ratio=c.target_ratio if c.HasField("target_ratio") else None,
        max_input_tokens=c.max_input_tokens if c.HasField("max_input_tokens") else None)


def compression(c: Compression | None) -> pb.CompressionReport | None:
    if c is None:
        return None
    return pb.CompressionReport(input_tokens_before=c.input_tokens_before,
                                tokens_saved=c.tokens_saved, chunks=c.chunks,
                                chunks_dropped=c.chunks_dropped, micros=c.micros)


def _saved(d: Decision | None) -> int:
    return d.compression.tokens_saved if d is not None and d.compression is not None else 0


def _candidate_rows(d: Decision) -> list[tuple[str, str, float, float, float, float, str]]:
    cands = d.candidates
    if isinstance(cands, CandidateTable):
        return cands.rows()
    return [(c.model, c.provider, c.predicted_quality, c.estimated_cost_usd,
             c.estimated_latency_ms, c.score, c.rejected_reason) for c in cands]


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def decision(d: Decision, with_candidates: bool = True) -> pb.RouteDecision:
    """The decision; `with_candidates=False` leaves out the per-candidate explanation
    (Complete responses: building it costs more than the rest of the message)."""
    return pb.RouteDecision(
        model=d.model,
        provider=d.provider,
        fallbacks=d.fallbacks,
        category=d.category,
        complexity=d.complexity,
        estimated_cost_usd=d.estimated_cost_usd,
        estimated_latency_ms=d.estimated_latency_ms,
        predicted_quality=d.predicted_quality,
        reason=d.reason,
        candidates=[
            pb.Candidate(model=m, provider=p, predicted_quality=q, estimated_cost_usd=c,
                         estimated_latency_ms=lat, score=_finite(sc), rejected_reason=r,
                         **_observed(d.load, m))
            for m, p, q, c, lat, sc, r in (_candidate_rows(d) if with_candidates else ())
        ],
        router_version=d.router_version,
        decision_micros=d.decision_micros,
        request_id=d.request_id,
        strategy=d.strategy,
        category_confidence=d.category_confidence,
        input_tokens=d.input_tokens,
        model_version=d.model_version,
        variant=d.variant,
        budget=None if d.budget is None else budget_state(d.budget),
        deployment=d.deployment,
        deployment_order=d.deployment_order,
        **({} if d.classifier is None else classifier_fields(d.classifier)),
        estimated_output_tokens=d.output_tokens,
        output_tokens_basis=d.output_basis,
        compression=compression(d.compression),
    )


def classifier_fields(c: ClassifierReport) -> dict[str, Any]:
    return {"classifier_source": c.source, "classifier_cost_usd": c.cost_usd,
            "classifier_latency_ms": c.latency_ms, "classifier_model": c.model}


def _observed(load: Mapping[str, ModelLoad] | None, model: str) -> dict[str, Any]:
    """A candidate's observed-load fields (none when nothing is observed of it)."""
    ml = load.get(model) if load is not None else None
    if ml is None:
        return {}
    out: dict[str, Any] = {"observed_calls": ml.calls, "in_flight": ml.in_flight,
                           "rpm_left": ml.rpm_left, "tpm_left": ml.tpm_left}
    if ml.calls > 0 and math.isfinite(ml.p50_ms):
        out["observed_p50_ms"], out["observed_p95_ms"] = ml.p50_ms, ml.p95_ms
    return out


def budget_state(b: BudgetState) -> pb.BudgetState:
    return pb.BudgetState(share_used=b.share_used, remaining_usd=b.remaining_usd, cap=b.cap,
                          pacing=b.pacing)


def budget_request(msg: pb.BudgetRequest, request_id: str) -> RouteRequest:
    """GetBudget's caller, through the same conversion as Route's request, so whatever binds
    Route to the caller's own tenant (auth) binds GetBudget too."""
    return route_request(pb.RouteRequest(tenant=msg.tenant, user=msg.user), request_id)


def budget_status(tenant: str, user: str, windows: list[WindowStatus]) -> pb.BudgetStatus:
    return pb.BudgetStatus(tenant=tenant, user=user, windows=[
        pb.BudgetWindow(scope=w.scope, name=w.name, limit_name=w.limit_name, period=w.period,
                        spent=w.spent, reserved=w.reserved, limit=w.limit,
                        remaining=w.remaining, resets_at_unix=w.resets_at,
                        resets_at=datetime.fromtimestamp(w.resets_at, UTC).strftime(
                            "%Y-%m-%dT%H:%M:%SZ"))
        for w in windows])


def route_batch(results: Sequence[Decision | RoutecoreError],
                explain: bool) -> pb.RouteBatchResponse:
    """Decisions in request order; a failed item is an empty decision plus an error."""
    out = pb.RouteBatchResponse()
    for i, r in enumerate(results):
        if isinstance(r, Decision):
            out.decisions.append(decision(r, with_candidates=explain))
        else:
            out.decisions.add()
            out.errors.append(pb.BatchItemError(index=i, code=r.status,
                                                message=item_error(i, r)))
    return out


def batch_job(job: BatchJob) -> pb.BatchJob:
    return pb.BatchJob(
        job_id=job.job_id, status=job.status, created_at_unix=int(job.created_at),
        total=job.total, succeeded=job.succeeded, failed=job.failed,
        cost_usd=job.cost_usd, standard_cost_usd=job.standard_cost_usd,
        items=[pb.BatchItem(index=i.index, request_id=i.request_id, model=i.model,
                            provider=i.provider, text=i.text, finish_reason=i.finish_reason,
                            usage=_usage(i.usage), cost_usd=i.cost_usd,
                            standard_cost_usd=i.standard_cost_usd, error_code=i.error_code,
                            error=i.error) for i in job.items])


def model_info(spec: ModelSpec, shares: Mapping[str, float] | None = None,
               rollout: tuple[str, str, str] | None = None) -> pb.ModelInfo:
    """`shares`: each version's share of the traffic now (default: all on the pinned one);
    `rollout`: (version rolled out, its state, why) when this model has a rollout."""
    shares = shares if shares is not None else {spec.version: 1.0}
    ro_version, ro_state, ro_reason = rollout or ("", "", "")
    return pb.ModelInfo(
        name=spec.name, provider=spec.provider, model_id=spec.model_id, version=spec.version,
        input_price_per_mtok=spec.price.input, output_price_per_mtok=spec.price.output,
        context_window=spec.context_window, capabilities=sorted(spec.capabilities),
        quality=dict(spec.quality), latency_p50_ms=spec.latency.p50_ms,
        latency_p95_ms=spec.latency.p95_ms, fallbacks=spec.fallbacks,
        max_output_tokens=spec.max_output_tokens,
        versions=[pb.ModelVersionInfo(name=v.name, model_id=v.model_id,
                                      input_price_per_mtok=v.price.input,
                                      output_price_per_mtok=v.price.output,
                                      pinned=v.name == spec.version,
                                      share=shares.get(v.name, 0.0),
                                      rollout_state=ro_state if v.name == ro_version else "",
                                      rollout_reason=ro_reason if v.name == ro_version else "")
                  for v in (spec.versions or
                            {spec.version: ModelVersion(spec.version, spec.model_id,
                                                        spec.price)}).values()],
        deployments=[_deployment_info(spec, d) for d in deployments_of(spec)],
    )


def _deployment_info(spec: ModelSpec, d: Deployment) -> pb.DeploymentInfo:
    price, lat = price_of(spec, d), d.latency or spec.latency
    return pb.DeploymentInfo(
        name=d.name, provider=d.provider or spec.provider, endpoint=d.endpoint,
        model_id=d.model_id, weight=d.weight, input_price_per_mtok=price.input,
        output_price_per_mtok=price.output,
        price_tiers=[pb.PriceTierInfo(above_input_tokens=t.above_input_tokens,
                                      input_price_per_mtok=t.input,
                                      output_price_per_mtok=t.output) for t in price.tiers],
        latency_p50_ms=lat.p50_ms, latency_p95_ms=lat.p95_ms, rpm=d.rate_limits.rpm,
        tpm=d.rate_limits.tpm)


def completion_request(msg: pb.CompleteRequest, request_id: str) -> CompletionRequest:
    route = route_request(msg.route, request_id)
    return CompletionRequest(
        route=route, max_output_tokens=msg.max_output_tokens, temperature=msg.temperature,
        cascade=msg.cascade, cascade_threshold=msg.cascade_threshold,
        ensemble_size=msg.ensemble_size, json_mode=msg.json_mode, cache=msg.cache,
        cache_max_age_s=msg.cache_max_age_s)


def _usage(u: Usage | None) -> pb.Usage | None:
    return None if u is None else pb.Usage(input_tokens=u.input_tokens,
                                           output_tokens=u.output_tokens)


def _attempts(attempts: tuple[Attempt, ...]) -> list[pb.Attempt]:
    return [pb.Attempt(provider=a.provider, model=a.model, deployment=a.deployment, error=a.error,
                       duration_ms=a.duration_ms, retry=a.retry) for a in attempts]


def _steps(steps: tuple[CascadeStep, ...]) -> list[pb.CascadeStep]:
    return [pb.CascadeStep(model=s.model, confidence=s.confidence, escalated=s.escalated,
                           reason=s.reason, cost_usd=s.cost_usd) for s in steps]


def completion_result(r: CompletionResult) -> pb.CompleteResponse:
    return pb.CompleteResponse(
        text=r.text, model=r.model, usage=_usage(r.usage), cost_usd=r.cost_usd,
        latency_ms=r.latency_ms, attempts=_attempts(r.attempts),
        cascade_steps=_steps(r.cascade_steps),
        decision=decision(r.decision, with_candidates=False) if r.decision is not None else None,
        request_id=r.request_id, provider=r.provider, finish_reason=r.finish_reason,
        deployment=r.deployment, cache_hit=client_hit(r.cache_hit), saved_usd=r.saved_usd,
        tokens_saved=_saved(r.decision))


def stream_event(e: StreamEvent) -> pb.CompleteChunk:
    return pb.CompleteChunk(
        delta=e.delta, model=e.model, usage=_usage(e.usage), cost_usd=e.cost_usd, done=e.done,
        attempts=_attempts(e.attempts), request_id=e.request_id, finish_reason=e.finish_reason,
        deployment=e.deployment, cache_hit=client_hit(e.cache_hit), saved_usd=e.saved_usd,
        tokens_saved=_saved(e.decision) if e.done else 0)



def reloaded(done: Reloaded) -> pb.ReloadResponse:
    return pb.ReloadResponse(applied=done.applied, config_path=done.path,
                             router_version=done.router_version, models=done.models,
                             rollout=done.rollout, peers_signalled=done.peers_signalled,
                             alarms_cleared=done.alarms_cleared)
