"""One audit record: what one RPC asked, what was decided, what it cost.

Scalar fields are table columns (so `summary` and filters are plain SQL);
attempts, fallbacks, features and feedback are JSON text; candidates are
packed (see below) and exported as objects. Empty values are documented:
`key_id` "" when the caller used no API key, `cache` "" when no response cache
is configured (else calling/cache.py's outcome: exact, semantic, miss, refresh,
bypass, skip; a hit's saved USD is `features.cache_saved_usd`), `budget` "" when
no budget applied.
"""

from __future__ import annotations

import json
import math
import sys
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# (model, provider, predicted_quality, estimated_cost_usd, estimated_latency_ms, score, rejected)
CandidateRow = tuple[str, str, float, float, float, float, str]
# (model, deployment, provider, outcome, latency_ms, retry, error): outcome "ok" or an error kind
AttemptRow = tuple[str, str, str, str, float, int, str]

CANDIDATE_KEYS = ("model", "provider", "predicted_quality", "estimated_cost_usd",
                  "estimated_latency_ms", "score", "rejected_reason")
ATTEMPT_KEYS = ("model", "deployment", "provider", "outcome", "latency_ms", "retry", "error")
# "Shadow": a shadow evaluation of a Complete/CompleteStream (observe/shadow.py), not an RPC.
AUDITED_RPCS = frozenset({"Route", "RouteBatch", "Complete", "CompleteStream", "Feedback",
                          "Shadow", "CompleteBatch"})
# RPCs whose records are decisions without an upstream call (replayed like Route).
DECISION_RPCS = frozenset({"Route", "RouteBatch"})
MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class CandidateColumns:
    """A decision's candidates as the router left them, columns not rows: packing
    them costs a few microseconds instead of one tuple per candidate."""

    models: Sequence[str]
    providers: Sequence[str]
    numbers: Any  # float64 array, shape (4, n): quality, cost, latency, score
    rejected: Sequence[str]

    @classmethod
    def of(cls, cols: tuple[Sequence[str], Sequence[str], Any, Any, Any, Any, list[str]],
           ) -> CandidateColumns:
        m, p, q, c, lat, s, r = cols
        return cls(m, p, np.array((q, c, lat, s), dtype="<f8"), list(r))

    def __len__(self) -> int:
        return len(self.models)

    def rows(self) -> list[CandidateRow]:
        q, c, lat, s = self.numbers.tolist()
        return list(zip(self.models, self.providers, q, c, lat, s, self.rejected, strict=True))


Candidates = list[CandidateRow] | CandidateColumns


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
    cache: str = ""  # "" no cache, else exact / semantic (hits), miss, refresh, bypass, skip
    budget: str = ""  # "" no budgets, else the reservation outcome
    prompt_sha256: str = ""
    prompt: str = ""  # only with audit.store_prompts
    candidates: Candidates = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    attempts: list[AttemptRow] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)  # what replay needs without the prompt
    feedback: dict[str, Any] = field(default_factory=dict)  # Feedback RPC: score, source, ...
    shadow: dict[str, Any] = field(default_factory=dict)  # Shadow: models, scores, winner, costs
    # The classifier's probability per category (replay needs it); exported in features.
    category_scores: Mapping[str, float] = field(default_factory=dict)


SCALARS = ("ts", "request_id", "rpc", "status", "error", "tenant", "user", "key_id", "strategy",
           "variant", "router_version", "category", "category_confidence", "complexity", "model",
           "model_version", "provider", "served_model", "predicted_quality",
           "estimated_cost_usd", "input_tokens", "output_tokens", "cost_usd", "latency_ms",
           "decision_us", "upstream_ms", "cache", "budget", "prompt_sha256", "prompt")
# Candidates (and the category probabilities) are stored as two columns: names as
# text (models, providers, reasons and category names, each list joined by US
# (0x1f), the four joined by RS (0x1e)) and numbers as packed little-endian
# float64 ([quality...], [cost...], [latency...], [score...], [probability...]).
# Writing those floats as JSON text cost more than the rest of the record together.
JSONS = ("fallbacks", "attempts", "features", "feedback", "shadow")
TEXTS = ("candidates",)
BLOBS = ("candidate_numbers",)
COLUMNS = SCALARS + TEXTS + JSONS + BLOBS
INTEGERS = frozenset({"input_tokens", "output_tokens", "decision_us"})
REALS = frozenset({"ts", "category_confidence", "complexity", "predicted_quality",
                   "estimated_cost_usd", "cost_usd", "latency_ms", "upstream_ms"})

def attempt_row(a: Any) -> AttemptRow:
    """One upstream attempt (calling's `Attempt` or an `AttemptError`) as a stored row."""
    outcome = "ok" if not a.error else (getattr(a, "kind", "") or "error")
    return (a.model, a.deployment, a.provider, outcome, a.duration_ms, a.retry,
            a.error[:MAX_ERROR_CHARS])


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _json(value: Any) -> str:
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    try:
        return _dumps(value)
    except ValueError:  # a caller's NaN/inf (its request was refused, and is still audited)
        return _dumps(_nulled(value))


def _nulled(value: Any) -> Any:
    """`value` with every non-finite float as None (JSON, and PostgreSQL's jsonb, have none)."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, Mapping):
        return {k: _nulled(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nulled(v) for v in value]
    return value


US, RS = "\x1f", "\x1e"


def _joined(items: tuple[str, ...]) -> str:
    text = US.join(items)
    if RS in text or text.count(US) != len(items) - 1:  # a separator inside a name
        text = US.join(i.replace(US, " ").replace(RS, " ") for i in items)
    return text


# The joined model and provider names of the registries seen lately: the same for every
# decision of one registry (identity-checked: an id may be reused after a reload).
_NAMES: dict[int, tuple[Sequence[str], Sequence[str], str]] = {}


def _names(models: Sequence[str], providers: Sequence[str]) -> str:
    hit = _NAMES.get(id(models))
    if hit is not None and hit[0] is models and hit[1] is providers:
        return hit[2]
    text = _joined(tuple(models)) + RS + _joined(tuple(providers))
    if len(_NAMES) >= 8:
        _NAMES.clear()
    _NAMES[id(models)] = (models, providers, text)
    return text


def _candidates(rows: Candidates, scores: Mapping[str, float]) -> tuple[str, bytes]:
    if isinstance(rows, CandidateColumns):
        numbers = rows.numbers.ravel()
        if scores:
            numbers = np.concatenate((numbers, np.fromiter(scores.values(), "<f8", len(scores))))
        return RS.join((_names(rows.models, rows.providers), _joined(tuple(rows.rejected)),
                        _joined(tuple(scores)))), numbers.astype("<f8", copy=False).tobytes()
    if not rows and not scores:
        return "", b""
    m, p, q, c, lat, s, r = zip(*rows, strict=True) if rows else ((),) * 7
    numbers = array("d", q + c + lat + s + tuple(scores.values()))
    if sys.byteorder != "little":
        numbers.byteswap()
    return RS.join((_joined(m), _joined(p), _joined(r), _joined(tuple(scores)))), \
        numbers.tobytes()


def unpack(text: str, blob: bytes | None) -> tuple[list[list[str]], array[float]]:
    """The names (models, providers, reasons, categories) and numbers of a stored row."""
    numbers = array("d")
    numbers.frombytes(bytes(blob or b""))
    if sys.byteorder != "little":
        numbers.byteswap()
    names = [part.split(US) for part in text.split(RS)] if text else []
    # An empty section is no items, except reasons, which are empty strings when their
    # models are there: "" splits into [""].
    if names and names[0] == [""]:
        names[0:3] = [[], [], []]
    if len(names) > 3 and names[3] == [""]:
        names[3] = []
    return names, numbers


def category_scores(text: str, blob: bytes | None) -> dict[str, float]:
    """The stored category probabilities ({} for a row without them)."""
    names, numbers = unpack(text, blob)
    if len(names) < 4:
        return {}
    k, n = len(names[3]), len(names[0])
    return dict(zip(names[3], numbers[4 * n:4 * n + k], strict=True))


def to_row(rec: AuditRecord) -> tuple[Any, ...]:
    """The record as a row in COLUMNS order (JSON text, packed candidate numbers)."""
    names, numbers = _candidates(rec.candidates, rec.category_scores)
    return (rec.ts, rec.request_id, rec.rpc, rec.status, rec.error, rec.tenant, rec.user,
            rec.key_id, rec.strategy, rec.variant, rec.router_version, rec.category,
            rec.category_confidence, rec.complexity, rec.model, rec.model_version, rec.provider,
            rec.served_model, rec.predicted_quality, rec.estimated_cost_usd, rec.input_tokens,
            rec.output_tokens, rec.cost_usd, rec.latency_ms, rec.decision_us, rec.upstream_ms,
            rec.cache, rec.budget, rec.prompt_sha256, rec.prompt, names, _json(rec.fallbacks),
            _json(rec.attempts), _json(rec.features), _json(rec.feedback), _json(rec.shadow),
            numbers)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # a rejected candidate's score is -inf


def to_document(row: tuple[Any, ...] | dict[str, Any]) -> dict[str, Any]:
    """A stored row as the exported JSON document: candidates and attempts as objects."""
    values = dict(zip(COLUMNS, row, strict=True)) if isinstance(row, tuple) else dict(row)
    for key in JSONS:
        v = values[key]
        values[key] = json.loads(v) if isinstance(v, str) else v
    blob = values.pop("candidate_numbers")
    names, numbers = unpack(values["candidates"], blob)
    n = len(names[0]) if names else 0
    scores = category_scores(values["candidates"], blob)
    if scores:
        values["features"]["category_scores"] = scores
    values["candidates"] = [
        dict(zip(CANDIDATE_KEYS, (names[0][i], names[1][i], numbers[i], numbers[n + i],
                                  numbers[2 * n + i], _finite(numbers[3 * n + i]), names[2][i]),
                 strict=True)) for i in range(n)]
    values["attempts"] = [dict(zip(ATTEMPT_KEYS, a, strict=True)) for a in values["attempts"]]
    return values
