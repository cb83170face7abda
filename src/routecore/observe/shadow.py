"""One shadow evaluation's outcome, and its audit record.

The shadow runner (calling/shadow.py) sends a sampled request to a shadow model
after the caller has its answer, judges both answers and hands a
`ShadowOutcome` to its subscribers (`on_outcome`: the regression monitor) and
to the recorder, which stores it as an audit record with `rpc` "Shadow": the
caller's tenant, user, category and routed model; `served_model` the shadow
model; `cost_usd` the shadow spend (its answer and the judge calls, never
billed to the caller); and the comparison under `shadow`. Defined here, below
calling/, so that observe/ (metrics, regression detection) can read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from routecore.observe.record import MAX_ERROR_CHARS, AttemptRow, AuditRecord

SHADOW_RPC = "Shadow"
WINNERS = ("routed", "shadow", "tie")


@dataclass(frozen=True, slots=True)
class ShadowOutcome:
    """Routed answer against shadow answer for one live request.

    `status` is "OK" when both answers were judged, else what stopped the shadow
    side (its gRPC status name: UNAVAILABLE when the shadow model failed,
    DEADLINE_EXCEEDED when `shadow.timeout_s` ran out); the scores and winner are
    then unset. `judged_by` is "judge" (the judge model's 0-10 grades),
    "cheap_checks" (empty, refusal, truncated, hedging, invalid JSON; else the
    registry quality; also when the judge is outside the caller's allow_models) or
    "same_model" (the shadow side picked the routed model: nothing was called, a tie).
    """

    ts: float  # unix seconds when the evaluation ended
    request_id: str
    tenant: str
    user: str
    key_id: str
    category: str
    strategy: str
    router_version: str
    routed_model: str
    routed_model_version: str
    routed_cost_usd: float  # what the caller paid (for reference: not shadow spend)
    mode: str  # "model" (a fixed shadow model) or "router" (a candidate router's pick)
    shadow_model: str
    status: str = "OK"
    error: str = ""
    judged_by: str = ""
    judge_model: str = ""
    routed_score: float | None = None  # in [0, 1]
    shadow_score: float | None = None
    winner: str = ""  # routed | shadow | tie ("" when not judged)
    shadow_cost_usd: float = 0.0  # the shadow model's answer
    judge_cost_usd: float = 0.0  # grading both answers
    input_tokens: int = 0  # the shadow answer's
    output_tokens: int = 0
    latency_ms: float = 0.0  # the whole evaluation
    candidate_router_version: str = ""  # mode "router"
    attempts: tuple[AttemptRow, ...] = field(default_factory=tuple)

    @property
    def spend_usd(self) -> float:
        """Shadow spend: the shadow answer and the judge calls."""
        return self.shadow_cost_usd + self.judge_cost_usd

    @property
    def judged(self) -> bool:
        return self.routed_score is not None and self.shadow_score is not None


def winner(routed: float, shadow: float, margin: float = 1e-9) -> str:
    if routed > shadow + margin:
        return "routed"
    if shadow > routed + margin:
        return "shadow"
    return "tie"


def shadow_record(o: ShadowOutcome) -> AuditRecord:
    """The outcome as an audit record (rpc "Shadow"; the comparison under `shadow`)."""
    details: dict[str, Any] = {
        "mode": o.mode, "routed_model": o.routed_model, "shadow_model": o.shadow_model,
        "judged_by": o.judged_by, "judge_model": o.judge_model,
        "routed_score": o.routed_score, "shadow_score": o.shadow_score, "winner": o.winner,
        "routed_cost_usd": o.routed_cost_usd, "shadow_cost_usd": o.shadow_cost_usd,
        "judge_cost_usd": o.judge_cost_usd}
    if o.candidate_router_version:
        details["candidate_router_version"] = o.candidate_router_version
    return AuditRecord(
        ts=o.ts, request_id=o.request_id, rpc=SHADOW_RPC, status=o.status,
        error=o.error[:MAX_ERROR_CHARS], tenant=o.tenant, user=o.user, key_id=o.key_id,
        strategy=o.strategy, router_version=o.router_version, category=o.category,
        model=o.routed_model, model_version=o.routed_model_version,
        served_model=o.shadow_model, input_tokens=o.input_tokens,
        output_tokens=o.output_tokens, cost_usd=o.spend_usd, latency_ms=o.latency_ms,
        upstream_ms=sum(a[4] for a in o.attempts), attempts=list(o.attempts), shadow=details)
