"""Plain dataclasses of the Complete API: what the servicer converts to and from protobuf.

`server/convert.py` maps `CompleteRequest` -> `CompletionRequest` and
`CompletionResult` / `StreamEvent` -> `CompleteResponse` / `CompleteChunk`; the
field names follow the proto one to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from routecore.domain import Decision, Message, RouteRequest

if TYPE_CHECKING:
    from routecore.calling.deadline import Deadline
    from routecore.config import Config
    from routecore.errors import AllProvidersFailed


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """One Complete call. Zero values mean "use the configured default"."""

    route: RouteRequest
    max_output_tokens: int = 0
    temperature: float = 0.0
    cascade: bool = False
    cascade_threshold: float = 0.0
    ensemble_size: int = 0
    json_mode: bool = False
    cache: str = ""  # response cache policy: "" (default) | default | bypass | refresh | allow
    cache_max_age_s: int = 0  # a cached answer must be at most this old (0: any within TTL)

    def messages(self) -> tuple[Message, ...]:
        """The chat to send upstream: the request's messages, or its prompt as one user turn."""
        if self.route.messages:
            return self.route.messages
        return (Message("user", self.route.prompt),)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One upstream try: `error` is empty on success; `retry` is 0 for a deployment's first try."""

    provider: str
    model: str
    deployment: str
    error: str = ""
    duration_ms: float = 0.0
    retry: int = 0
    kind: str = ""  # the error's kind (timeout, rate_limit, ...) when it failed


@dataclass(frozen=True, slots=True)
class CascadeStep:
    """One cascade (or ensemble) member: its confidence and whether it was escalated past."""

    model: str
    confidence: float
    escalated: bool
    reason: str
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class CompletionResult:
    text: str
    model: str
    provider: str
    usage: Usage
    cost_usd: float
    latency_ms: float
    attempts: tuple[Attempt, ...]
    cascade_steps: tuple[CascadeStep, ...] = ()
    decision: Decision | None = None
    request_id: str = ""
    finish_reason: str = ""
    deployment: str = ""  # the name of the deployment that answered (and is charged)
    cache_hit: str = ""  # calling/cache.py Lookup.outcome: "exact"/"semantic" on a hit
    saved_usd: float = 0.0  # a hit: what the answer cost when it was made


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One streamed piece; the last has `done=True` with usage, cost and attempts."""

    delta: str = ""
    model: str = ""
    done: bool = False
    usage: Usage | None = None
    cost_usd: float = 0.0
    attempts: tuple[Attempt, ...] = ()
    request_id: str = ""
    finish_reason: str = ""
    provider: str = ""
    decision: Decision | None = None  # the routing decision (an HTTP edge sends it as headers)
    deployment: str = ""  # on the last event: the deployment that answered
    cache_hit: str = ""  # as CompletionResult's
    saved_usd: float = 0.0  # on the last event of a stream served from the cache


@dataclass(frozen=True, slots=True)
class ModelAnswer:
    """One successful model call (of a chain, a cascade step, an ensemble member or a judge)."""

    model: str
    provider: str
    deployment: str
    text: str
    finish_reason: str
    usage: Usage
    cost_usd: float
    logprobs: tuple[float, ...] | None = None
    deployment_name: str = ""  # `deployment` is its key (endpoint/model_id)


class ModelCaller(Protocol):
    """What a cascade or an ensemble needs from the orchestrator (the Completer).

    Cascade and ensemble depend on this small interface, not on `Completer`, so
    the import graph runs one way: completion -> cascade/ensemble -> types.
    """

    @property
    def config(self) -> Config: ...

    def chain(self, decision: Decision) -> list[str]: ...

    async def call_models(self, models: Sequence[str], req: CompletionRequest,
                          decision: Decision, deadline: Deadline, attempts: list[Attempt], *,
                          messages: tuple[Message, ...] | None = None,
                          logprobs: bool = False) -> ModelAnswer: ...

    def all_failed(self, attempts: Sequence[Attempt]) -> AllProvidersFailed: ...
