"""One audit record: what one RPC asked, what was decided, what it cost.

Scalar fields are table columns (so `summary` and filters are plain SQL);
lists and mappings (candidates, attempts, fallbacks, features, feedback) are
JSON text. Fields filled by features that land later stay at their documented
empty values: `key_id` "" (no API keys yet), `cache` "" (no response cache),
`budget` "" (no budgets).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# (model, provider, predicted_quality, estimated_cost_usd, estimated_latency_ms, score, rejected)
CandidateRow = tuple[str, str, float, float, float, float, str]
# (model, deployment, provider, outcome, latency_ms, retry, error): outcome "ok" or an error kind
AttemptRow = tuple[str, str, str, str, float, int, str]

CANDIDATE_KEYS = ("model", "provider", "predicted_quality", "estimated_cost_usd",
                  "estimated_latency_ms", "score", "rejected_reason")
ATTEMPT_KEYS = ("model", "deployment", "provider", "outcome", "latency_ms", "retry", "error")
AUDITED_RPCS = frozenset({"Route", "Complete", "CompleteStream", "Feedback"})
MAX_ERROR_CHARS = 500


@dataclass(slots=True)
class AuditRecord:
    ts: float  # unix seconds, when the RPC finished
    request_id: str
    rpc: str
    status: str  # gRPC status name, "OK" on success
    error: str = ""
    tenant: str = ""
    user: str = ""
    key_id: str = ""  # the API key's id, never the key ("" until API keys exist)
    strategy: str = ""
    variant: str = ""  # A/B variant, "" when no A/B test runs
    router_version: str = ""
    category: str = ""
    category_confidence: float = 0.0
    complexity: float = 0.0
    model: str = ""  # the chosen model
    model_version: str = ""
    provider: str = ""
    served_model: str = ""  # the model that answered (differs after a fallback)
    predicted_quality: float = 0.0
    estimated_cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  # actual (Complete); 0 for Route
    latency_ms: float = 0.0  # the whole RPC
    decision_us: int = 0
    upstream_ms: float = 0.0  # summed attempt durations
    cache: str = ""  # "" no cache, else "hit" / "miss"
    budget: str = ""  # "" no budgets, else the reservation outcome
    prompt_sha256: str = ""
    prompt: str = ""  # only with audit.store_prompts
    candidates: list[CandidateRow] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    attempts: list[AttemptRow] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)  # what replay needs without the prompt
    feedback: dict[str, Any] = field(default_factory=dict)  # Feedback RPC: score, source, ...


SCALARS = ("ts", "request_id", "rpc", "status", "error", "tenant", "user", "key_id", "strategy",
           "variant", "router_version", "category", "category_confidence", "complexity", "model",
           "model_version", "provider", "served_model", "predicted_quality",
           "estimated_cost_usd", "input_tokens", "output_tokens", "cost_usd", "latency_ms",
           "decision_us", "upstream_ms", "cache", "budget", "prompt_sha256", "prompt")
JSONS = ("candidates", "fallbacks", "attempts", "features", "feedback")
COLUMNS = SCALARS + JSONS
INTEGERS = frozenset({"input_tokens", "output_tokens", "decision_us"})
REALS = frozenset({"ts", "category_confidence", "complexity", "predicted_quality",
                   "estimated_cost_usd", "cost_usd", "latency_ms", "upstream_ms"})

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _clean(x: float) -> float:
    # JSON has no inf/NaN: a rejected candidate's score can be -inf.
    return x if x == x and x not in (float("inf"), float("-inf")) else 0.0


def to_row(rec: AuditRecord) -> tuple[Any, ...]:
    """The record as a row in COLUMNS order, lists and mappings as compact JSON text."""
    cands = [(m, p, q, c, lat, _clean(s), r) for m, p, q, c, lat, s, r in rec.candidates]
    return (rec.ts, rec.request_id, rec.rpc, rec.status, rec.error, rec.tenant, rec.user,
            rec.key_id, rec.strategy, rec.variant, rec.router_version, rec.category,
            rec.category_confidence, rec.complexity, rec.model, rec.model_version, rec.provider,
            rec.served_model, rec.predicted_quality, rec.estimated_cost_usd, rec.input_tokens,
            rec.output_tokens, rec.cost_usd, rec.latency_ms, rec.decision_us, rec.upstream_ms,
            rec.cache, rec.budget, rec.prompt_sha256, rec.prompt, _dumps(cands),
            _dumps(rec.fallbacks), _dumps(rec.attempts), _dumps(rec.features),
            _dumps(rec.feedback))


def to_document(row: tuple[Any, ...] | dict[str, Any]) -> dict[str, Any]:
    """A stored row as the exported JSON document: candidates and attempts as objects."""
    values = dict(zip(COLUMNS, row, strict=True)) if isinstance(row, tuple) else dict(row)
    for key in JSONS:
        v = values[key]
        values[key] = json.loads(v) if isinstance(v, str) else v
    values["candidates"] = [dict(zip(CANDIDATE_KEYS, c, strict=True)) for c in values["candidates"]]
    values["attempts"] = [dict(zip(ATTEMPT_KEYS, a, strict=True)) for a in values["attempts"]]
    return values
