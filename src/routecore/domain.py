"""Domain objects shared by the router, the policy and the server edge.

Plain frozen dataclasses: the server converts protobuf to these at the edge
(`server/convert.py`) and nothing below the edge sees a protobuf message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

STRATEGIES = ("complexity", "domain", "cost", "latency", "quality", "multi_objective", "learned")
CAPABILITIES = ("code", "tools", "vision", "json")
ROLES = ("system", "user", "assistant", "tool", "developer")


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Constraints:
    """Per-request limits; None means "no limit"."""

    max_cost_usd: float | None = None
    max_latency_ms: float | None = None
    min_quality: float | None = None
    required_capabilities: frozenset[str] = frozenset()
    allow_models: frozenset[str] = frozenset()
    deny_models: frozenset[str] = frozenset()
    max_output_tokens: int | None = None


NO_CONSTRAINTS = Constraints()


@dataclass(frozen=True, slots=True)
class Weights:
    """Multi-objective weights over (quality, cost, latency)."""

    quality: float = 1.0
    cost: float = 0.5
    latency: float = 0.1


@dataclass(frozen=True, slots=True)
class RouteRequest:
    prompt: str = ""
    messages: tuple[Message, ...] = ()
    tenant: str = ""
    user: str = ""
    strategy: str = ""
    constraints: Constraints = NO_CONSTRAINTS
    request_id: str = ""
    willingness_to_pay: float | None = None
    weights: Weights | None = None
    # Id of the API key that proved the caller (set by the server edge when auth is
    # on, never by the client); per-key budgets are keyed on it.
    key_id: str = ""
    # Pin this registry model (its configured fallbacks follow it) instead of routing.
    model: str = ""

    def text(self) -> str:
        """The text the classifier reads: the prompt, or the chat's contents."""
        if self.prompt:
            return self.prompt
        return "\n".join(m.content for m in self.messages)


@dataclass(frozen=True, slots=True)
class Classification:
    category: str
    complexity: float
    confidence: float
    # Probability per category, for explanations.
    scores: dict[str, float] = field(default_factory=dict)
    # The same probabilities as an array in config category order (hot path).
    probs: Any = None


@dataclass(slots=True)
class Candidate:
    model: str
    provider: str
    predicted_quality: float
    estimated_cost_usd: float
    estimated_latency_ms: float
    score: float = 0.0
    rejected_reason: str = ""


class CandidateTable(Sequence[Candidate]):
    """Every candidate of a decision, stored as columns and built into `Candidate`
    objects only when someone reads them (the RPC edge, the CLI), so an
    in-process decision does not pay for objects nobody looks at."""

    __slots__ = ("_annotate", "_built", "_cols", "_rows")

    def __init__(self, models: Sequence[str], providers: Sequence[str], quality: Any,
                 cost: Any, latency: Any, score: Any, rejected: list[str],
                 annotate: Callable[[list[str]], None] | None = None) -> None:
        # quality, cost, latency, score: float sequences or numpy arrays. `annotate`
        # may add explanations to `rejected` the first time candidates are read.
        self._cols = (models, providers, quality, cost, latency, score, rejected)
        self._annotate = annotate
        self._rows: list[tuple[str, str, float, float, float, float, str]] | None = None
        self._built: tuple[Candidate, ...] | None = None

    def rows(self) -> list[tuple[str, str, float, float, float, float, str]]:
        """(model, provider, quality, cost, latency, score, rejected_reason) per candidate,
        as plain Python values: what the RPC edge serialises, without building objects."""
        if self._rows is None:
            m, p, q, c, lat, s, r = self._cols
            if self._annotate is not None:
                self._annotate(r)
            cols = [x.tolist() if hasattr(x, "tolist") else [float(v) for v in x]
                    for x in (q, c, lat, s)]
            self._rows = list(zip(m, p, *cols, r, strict=True))
        return self._rows

    def _all(self) -> tuple[Candidate, ...]:
        if self._built is None:
            self._built = tuple(Candidate(*row) for row in self.rows())
        return self._built

    def __len__(self) -> int:
        return len(self._cols[0])

    @overload
    def __getitem__(self, i: int) -> Candidate: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Candidate]: ...
    def __getitem__(self, i: int | slice) -> Candidate | Sequence[Candidate]:
        return self._all()[i]

    def __iter__(self) -> Iterator[Candidate]:
        return iter(self._all())

    def __repr__(self) -> str:
        return f"CandidateTable({len(self)} candidates)"


@dataclass(frozen=True, slots=True)
class Decision:
    model: str
    provider: str
    model_version: str
    fallbacks: tuple[str, ...]
    category: str
    category_confidence: float
    complexity: float
    estimated_cost_usd: float
    estimated_latency_ms: float
    predicted_quality: float
    reason: str
    candidates: Sequence[Candidate]
    router_version: str
    strategy: str
    input_tokens: int
    request_id: str
    decision_micros: int = 0
    variant: str = ""
