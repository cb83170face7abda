"""RPCs as audit records: what the servicer leaves in a `Trace`, turned into an
`AuditRecord` by the recorder's writer thread (never on the request path).

The servicer fills a `Trace` per audited RPC (the domain request, then the
decision or result); the interceptor hands it to `Recorder.put` with the
status when the RPC ends, so failed calls are recorded too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

from routecore.calling.batch import BatchDone
from routecore.calling.types import (
    Attempt,
    CascadeStep,
    CompletionRequest,
    CompletionResult,
    StreamEvent,
)
from routecore.domain import CandidateTable, ClassifierReport, Decision, RouteRequest
from routecore.errors import AllProvidersFailed, AttemptError, RoutecoreError
from routecore.observe.record import (
    AUDITED_RPCS,
    MAX_ERROR_CHARS,
    AttemptRow,
    AuditRecord,
    CandidateColumns,
    Candidates,
    attempt_row,
)
from routecore.observe.recorder import Event
from routecore.observe.shadow import ShadowOutcome, shadow_record
from routecore.state.budget import BudgetExceeded

trace_var: ContextVar[Trace | None] = ContextVar("routecore_trace", default=None)
# Recorder.put: (rpc, request id, t0, status, exception, trace); it only enqueues.
RecordFn = Callable[[str, str, float, str, BaseException | None, Any], None]


class Trace:
    """What one RPC did, filled in by the servicer as it goes."""

    __slots__ = ("caller", "decision", "edge", "request", "result")

    def __init__(self, request: RouteRequest | CompletionRequest | dict[str, Any]
                 | list[RouteRequest] | None, edge: str = "",
                 caller: tuple[str, str, str] = ("", "", "")) -> None:
        self.request = request  # a list for RouteBatch; None: refused before it was read
        self.edge = edge  # "" gRPC, "http" the OpenAI-compatible door
        self.caller = caller  # (tenant, user, key id) of the API key, for a request of None
        self.decision: Decision | None = None
        self.result: (CompletionResult | StreamEvent | dict[str, Any]
                      | list[Decision | RoutecoreError] | None) = None


def candidate_rows(d: Decision) -> Candidates:
    cands = d.candidates
    if isinstance(cands, CandidateTable):
        # As columns, unexplained: Pareto explanations cost more than the route.
        return CandidateColumns.of(cands.columns())
    return [(c.model, c.provider, c.predicted_quality, c.estimated_cost_usd,
             c.estimated_latency_ms, c.score, c.rejected_reason) for c in cands]


def _attempt_rows(attempts: Sequence[Attempt | AttemptError]) -> list[AttemptRow]:
    return [attempt_row(a) for a in attempts]


_JUDGE = re.compile(r"\bjudge (\d+(?:\.\d+)?)")


def judge_grades(steps: Sequence[CascadeStep]) -> list[list[Any]]:
    """[model, grade in [0, 1]] for each cascade step or ensemble member a judge graded
    (the step's reason says "judge 0.80"); regression detection and replay read them."""
    out: list[list[Any]] = []
    for step in steps:
        m = _JUDGE.search(step.reason)
        if m:
            out.append([step.model, min(1.0, float(m.group(1)))])
    return out


def _features(req: RouteRequest, text: str) -> dict[str, Any]:
    """What replay needs besides the decision's classifier output, without the prompt."""
    c = req.constraints
    out: dict[str, Any] = {"chars": len(text), "messages": len(req.messages)}
    if req.strategy:
        out["requested_strategy"] = req.strategy
    if req.willingness_to_pay is not None:
        out["willingness_to_pay"] = req.willingness_to_pay
    if req.weights is not None:
        w = req.weights
        out["weights"] = [w.quality, w.cost, w.latency]
    limits: dict[str, Any] = {k: v for k, v in (("max_cost_usd", c.max_cost_usd),
                                ("max_latency_ms", c.max_latency_ms),
                                ("min_quality", c.min_quality),
                                ("max_output_tokens", c.max_output_tokens)) if v is not None}
    for k, s in (("required_capabilities", c.required_capabilities),
                 ("allow_models", c.allow_models), ("deny_models", c.deny_models)):
        if s:
            limits[k] = sorted(s)
    if limits:
        out["constraints"] = limits
    return out


def _with_request(rec: AuditRecord, req: RouteRequest, store_prompts: bool) -> None:
    text = req.text()
    rec.tenant, rec.user = req.tenant, req.user
    rec.key_id = req.key_id
    rec.prompt_sha256 = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    rec.features = _features(req, text)
    if store_prompts:
        rec.prompt = text
        if req.messages:
            rec.features["chat"] = [[m.role, m.content] for m in req.messages]


def _with_decision(rec: AuditRecord, d: Decision) -> None:
    rec.strategy, rec.variant, rec.router_version = d.strategy, d.variant, d.router_version
    rec.category, rec.category_confidence, rec.complexity = (
        d.category, d.category_confidence, d.complexity)
    rec.model, rec.model_version, rec.provider = d.model, d.model_version, d.provider
    rec.predicted_quality, rec.estimated_cost_usd = d.predicted_quality, d.estimated_cost_usd
    rec.input_tokens, rec.decision_us = d.input_tokens, d.decision_micros
    rec.fallbacks = list(d.fallbacks)
    if d.deployment:  # the seller arbitrage chose (a Complete's attempts name the one used)
        rec.features["deployment"] = d.deployment
    rec.candidates = candidate_rows(d)
    if d.category_scores:
        rec.category_scores = d.category_scores
    if d.output_basis and d.output_basis != "default":  # replay without the prompt needs it
        rec.features["output"] = [d.output_tokens, d.output_basis]
    if d.compression is not None:
        rec.features["compress"] = {"input_tokens_before": d.compression.input_tokens_before,
                                    "tokens_saved": d.compression.tokens_saved}
    if d.budget is not None and not rec.budget:
        rec.budget = "paced" if d.budget.pacing > 0.0 else "within"
        rec.features["budget"] = {"cap": d.budget.cap, "share_used": d.budget.share_used,
                                  "pacing": d.budget.pacing}


def build_record(ev: Event, offset: float,
                 store_prompts: bool) -> AuditRecord | list[AuditRecord] | None:
    """The audit record of one finished RPC (one per item for RouteBatch); None for RPCs
    that are not audited."""
    rpc, rid, t0, t1, status, exc, trace = ev
    if rpc not in AUDITED_RPCS:
        return None
    if rpc == "RouteBatch":
        return _batch_records(ev, offset, store_prompts)
    if rpc == "CompleteBatch":  # the RPC itself is not; its items are, once answered
        return _batch_job_records(trace, store_prompts) if isinstance(trace, BatchDone) else []
    if isinstance(trace, ShadowOutcome):  # put by the shadow runner, not by an RPC
        return shadow_record(trace)
    rec = AuditRecord(ts=t1 + offset, request_id=rid, rpc=rpc, status=status,
                      latency_ms=(t1 - t0) * 1000.0)
    if exc is not None:
        msg = exc.message if isinstance(exc, RoutecoreError) else type(exc).__name__
        rec.error = msg[:MAX_ERROR_CHARS]
        if isinstance(exc, AllProvidersFailed):
            rec.attempts = _attempt_rows(exc.attempts)
        if isinstance(exc, BudgetExceeded):
            rec.budget = "exceeded"
    if not isinstance(trace, Trace):
        return rec
    req = trace.request
    if req is None:  # refused before it was read or scoped: audited as the key's caller
        rec.tenant, rec.user, rec.key_id = trace.caller
        if trace.edge:
            rec.features["edge"] = trace.edge
        return rec
    if isinstance(req, dict):  # Feedback
        _feedback(rec, req, trace.result, store_prompts)
        return rec
    if isinstance(req, list):  # only RouteBatch traces hold a list, handled above
        return rec
    route = req.route if isinstance(req, CompletionRequest) else req
    _with_request(rec, route, store_prompts)
    if trace.edge:
        rec.features["edge"] = trace.edge
    if trace.decision is not None:
        _with_decision(rec, trace.decision)
    res = trace.result
    if isinstance(res, (CompletionResult, StreamEvent)):
        if res.decision is not None:
            _with_decision(rec, res.decision)
        rec.served_model = res.model
        if res.usage is not None:
            rec.input_tokens, rec.output_tokens = res.usage.input_tokens, res.usage.output_tokens
        rec.cost_usd = res.cost_usd
        rec.attempts = _attempt_rows(res.attempts)
        rec.cache = res.cache_hit
        if res.saved_usd:
            rec.features["cache_saved_usd"] = res.saved_usd
        if isinstance(res, CompletionResult) and res.cascade_steps:
            graded = judge_grades(res.cascade_steps)
            if graded:
                rec.features["judge"] = graded
    decided = trace.decision or (res.decision if isinstance(res, (CompletionResult, StreamEvent))
                                 else None)
    if decided is not None and decided.classifier is not None:
        _with_classifier(rec, decided.classifier)
    rec.upstream_ms = sum(a[4] for a in rec.attempts)
    return rec


def _batch_records(ev: Event, offset: float, store_prompts: bool) -> list[AuditRecord]:
    """One record per RouteBatch item, like a Route's: its own request id, tenant and
    decision, or its own error. latency_ms is the whole call's (what the caller waited);
    features["batch"] places the item. A call refused as a whole has no items to record."""
    _rpc, _rid, t0, t1, _status, _exc, trace = ev
    if not isinstance(trace, Trace) or not isinstance(trace.result, list):
        return []
    reqs, results = trace.request, trace.result
    assert isinstance(reqs, list)
    ms, n = (t1 - t0) * 1000.0, len(results)
    out: list[AuditRecord] = []
    for i, (req, res) in enumerate(zip(reqs, results, strict=True)):
        rec = AuditRecord(ts=t1 + offset, request_id=req.request_id, rpc="RouteBatch",
                          status="OK", latency_ms=ms)
        _with_request(rec, req, store_prompts)
        rec.features["batch"] = {"index": i, "size": n}
        if isinstance(res, Decision):
            rec.request_id = res.request_id
            _with_decision(rec, res)
        else:
            rec.status, rec.error = res.status, res.message[:MAX_ERROR_CHARS]
        out.append(rec)
    return out


def _with_classifier(rec: AuditRecord, c: ClassifierReport) -> None:
    """classifier.mode llm/cascade: where the category came from, what asking cost, and the
    classifying call's attempts beside the answer's (metrics count both)."""
    rec.features["classifier"] = {"source": c.source, "model": c.model, "cost_usd": c.cost_usd,
                                  "latency_ms": c.latency_ms, "note": c.note[:MAX_ERROR_CHARS]}
    rec.attempts = [*_attempt_rows(c.attempts), *rec.attempts]


def _batch_job_records(done: BatchDone, store_prompts: bool) -> list[AuditRecord]:
    """One record per CompleteBatch item when its job has finished: its caller, model,
    tokens and batch-price cost (or its error); latency_ms is the job's whole time."""
    job = done.job
    ms = max(0.0, done.finished_at - job.created_at) * 1000.0
    out: list[AuditRecord] = []
    for item, req in zip(job.items, done.requests, strict=True):
        rec = AuditRecord(ts=done.finished_at, request_id=item.request_id, rpc="CompleteBatch",
                          status=item.error_code or "OK", error=item.error[:MAX_ERROR_CHARS],
                          latency_ms=ms)
        _with_request(rec, req, store_prompts)
        rec.model = rec.served_model = item.model
        rec.provider, rec.cost_usd = item.provider, item.cost_usd
        if item.usage is not None:
            rec.input_tokens, rec.output_tokens = item.usage.input_tokens, item.usage.output_tokens
        rec.features["batch"] = {"job_id": job.job_id, "index": item.index, "size": job.total,
                                 "standard_cost_usd": item.standard_cost_usd}
        out.append(rec)
    return out


def _feedback(rec: AuditRecord, req: dict[str, Any], result: Any, store_prompts: bool) -> None:
    prompt = str(req.get("prompt", ""))
    rec.model = rec.served_model = str(req.get("model", ""))
    rec.tenant, rec.user = str(req.get("tenant", "")), str(req.get("user", ""))
    rec.key_id = str(req.get("key_id", ""))
    rec.feedback = {"ref_request_id": req.get("request_id", ""), "score": req.get("score"),
                    "source": req.get("source", "")}
    if isinstance(result, dict):
        rec.feedback.update(result)
    if prompt:
        rec.prompt_sha256 = hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()
        if store_prompts:
            rec.prompt = prompt
