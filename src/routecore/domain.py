"""Domain objects shared by the router, the policy and the server edge.

Plain frozen dataclasses: the server converts protobuf to these at the edge
(`server/convert.py`) and nothing below the edge sees a protobuf message.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from routecore.errors import InvalidRequest, echo

STRATEGIES = ("complexity", "domain", "cost", "latency", "quality", "multi_objective", "learned")
CAPABILITIES = ("code", "tools", "vision", "json")
ROLES = ("system", "user", "assistant", "tool", "developer")

# A request id names one decision for feedback and logs. Caller-supplied ids are
# bounded so a huge id cannot bypass the recent-decisions memory cap or flood logs.
MAX_REQUEST_ID = 128
_REQUEST_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:\-]{{0,{MAX_REQUEST_ID - 1}}}")


def check_request_id(value: str, field: str = "request_id") -> str:
    """`value` if it is a valid caller-supplied request id (1-128 of A-Z a-z 0-9 . _ : -,
    starting with a letter or digit), else InvalidRequest naming `field`."""
    if _REQUEST_ID.fullmatch(value) is None:
        raise InvalidRequest(
            f"{field}: must be 1-{MAX_REQUEST_ID} characters of A-Z a-z 0-9 . _ : - starting "
            f"with a letter or digit, got {echo(value, 40)}")
    return value


class RequestIds:
    """Unguessable request ids: 128 random bits each, as 32 hex digits.

    Bits come from the OS CSPRNG in blocks of 256 ids, so an id costs a slice,
    not a syscall; an id is never derived from another, so seeing some ids tells
    nothing about the next one (a prefix plus a counter would).
    """

    __slots__ = ("_block", "_next")
    _IDS_PER_BLOCK = 256

    def __init__(self) -> None:
        self._block = ""
        self._next = 0

    def __call__(self) -> str:
        i = self._next
        if i >= len(self._block):
            self._block, i = os.urandom(16 * self._IDS_PER_BLOCK).hex(), 0
        self._next = i + 32
        return self._block[i:i + 32]


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
class CompressSpec:
    """Prompt compression asked for: one of a share of the input tokens to keep
    (target_ratio in (0, 1]; 1 turns compression off) or an input token budget."""

    target_ratio: float | None = None
    max_input_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Compression:
    """What compression did to a request: its prompt (or messages) as sent on."""

    input_tokens_before: int
    input_tokens: int
    chunks: int  # context chunks considered
    chunks_dropped: int
    prompt: str  # the compressed prompt ("" for a chat)
    messages: tuple[Message, ...]  # the compressed chat (() for a prompt)
    micros: int = 0

    @property
    def tokens_saved(self) -> int:
        return self.input_tokens_before - self.input_tokens


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
    # Compress long context before routing and calling (None: the config's per category).
    compress: CompressSpec | None = None

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

    def rows(self, explained: bool = True) -> list[tuple[str, str, float, float, float, float,
                                                          str]]:
        """(model, provider, quality, cost, latency, score, rejected_reason) per candidate,
        as plain Python values: what the RPC edge serialises, without building objects.
        `explained=False` (the audit trail) skips the explanations computed on first read
        (why an eligible model lost, e.g. Pareto domination) unless they already were."""
        if self._rows is None:
            r = self._cols[6]
            if not explained:
                return self._plain(list(r))
            if self._annotate is not None:
                self._annotate(r)
            self._rows = self._plain(r)
        return self._rows

    def columns(self) -> tuple[Sequence[str], Sequence[str], Any, Any, Any, Any, list[str]]:
        """(models, providers, quality, cost, latency, score, rejected reasons) as stored:
        the audit trail packs them without building rows. The reasons are explained only
        if the candidates were already read."""
        return self._cols

    def _plain(self, reasons: list[str]) -> list[tuple[str, str, float, float, float, float, str]]:
        m, p, q, c, lat, s, _ = self._cols
        cols = [x.tolist() if hasattr(x, "tolist") else [float(v) for v in x]
                for x in (q, c, lat, s)]
        return list(zip(m, p, *cols, reasons, strict=True))

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
class BudgetState:
    """The caller's budget as routing saw it: the cap nearest to its limit decides."""

    share_used: float  # highest spent-plus-reserved share of any cap that applies (may pass 1)
    remaining_usd: float | None  # least USD left under any USD cap; None: no USD cap applies
    cap: str  # which cap is nearest, e.g. "tenant acme usd_per_day"
    pacing: float  # 0 below budgets.pacing.start, rising smoothly to 1 at the cap


@dataclass(frozen=True, slots=True)
class ClassifierReport:
    """How an llm/cascade-mode classification was reached (calling/llm_classifier.py).

    `source`: local (the local classifier was confident enough, or the model was
    pinned), llm (the LLM answered), cache (an earlier LLM answer), fallback (the
    LLM was asked and failed: `note` says why; the local classification was used)."""

    source: str
    model: str = ""  # the classifying model, when it was asked (or cached)
    cost_usd: float = 0.0  # what the classification call cost (charged to the caller)
    latency_ms: float = 0.0  # time spent classifying with the LLM (0 for local)
    note: str = ""
    # The classifying call's upstream attempts (calling.types.Attempt, which this layer
    # cannot name), for the audit trail and metrics.
    attempts: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelLoad:
    """What the fleet observes of one model right now (state/observed.py)."""

    calls: float = 0.0  # decayed number of observed calls behind the percentiles (0: none)
    p50_ms: float = math.nan  # observed latency percentiles of whole calls (NaN: none)
    p95_ms: float = math.nan
    in_flight: int = 0  # calls in progress, every replica's
    rpm_left: float | None = None  # requests left in its RPM bucket (None: no RPM limit)
    tpm_left: float | None = None  # tokens left in its TPM bucket (None: no TPM limit)
    rpm: int = 0  # the limits (0: none)
    tpm: int = 0


@dataclass(frozen=True, slots=True)
class LoadSnapshot:
    """Every model's observed load at `at` (wall-clock seconds); `version` rises with each."""

    version: int
    at: float
    models: Mapping[str, ModelLoad]


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
    budget: BudgetState | None = None  # set when a budget applies to the caller
    # The classifier's probability per category (the audit trail keeps it for replay).
    category_scores: Mapping[str, float] | None = None
    # The deployment that should serve it (routing/arbitrage.py) and the failover order
    # among the model's deployments; `provider` is that deployment's.
    deployment: str = ""
    deployment_order: tuple[str, ...] = ()
    classifier: ClassifierReport | None = None  # llm and cascade modes only
    # The answer's expected length (routing/output_length.py) and why.
    output_tokens: int = 0
    output_basis: str = ""
    # What the fleet observed of each model when this was decided (routing/load.py).
    load: Mapping[str, ModelLoad] | None = None
    # Set when the prompt was compressed: input_tokens counts the compressed prompt.
    compression: Compression | None = None
