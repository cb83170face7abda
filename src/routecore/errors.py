"""The one error taxonomy of routecore.

Every error raised across a module boundary is a `RoutecoreError`. Each class
knows its gRPC status (by name, so domain code never imports grpc) and whether
a caller may retry it. `routecore.server.interceptors` is the only place that
turns these into gRPC statuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class RoutecoreError(Exception):
    """Base of all routecore errors."""

    status: str = "INTERNAL"
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(RoutecoreError):
    """The request is malformed: empty prompt, negative limit, bad field."""

    status = "INVALID_ARGUMENT"


class UnknownModel(InvalidRequest):
    """A model named in the request is not in the registry."""


class RequestTooLarge(InvalidRequest):
    """The request body is over the server's size limit (HTTP 413)."""


class MethodNotAllowed(InvalidRequest):
    """An HTTP method the path does not serve (HTTP 405)."""


class ConfigError(RoutecoreError):
    """The configuration is invalid; the message names the exact field."""

    status = "FAILED_PRECONDITION"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid config:\n  " + "\n  ".join(self.problems))


class NoModelAvailable(RoutecoreError):
    """No model satisfies the request's constraints; carries each rejection."""

    status = "FAILED_PRECONDITION"

    def __init__(self, reasons: dict[str, str]) -> None:
        self.reasons = dict(reasons)
        detail = "; ".join(f"{m}: {r}" for m, r in self.reasons.items())
        super().__init__(f"no model satisfies the constraints ({detail})")


class ModelsUnavailable(RoutecoreError):
    """Models that fit the request are all briefly out of service (open circuit breakers):
    a transient outage the caller may retry, not a request that can never be served."""

    status = "UNAVAILABLE"
    retryable = True

    def __init__(self, models: Sequence[str], why: str) -> None:
        self.models = list(models)
        shown = ", ".join(self.models[:5]) + (f" and {len(self.models) - 5} more"
                                              if len(self.models) > 5 else "")
        super().__init__(f"temporarily unavailable ({why}): {shown}; retry later")


class NotFound(RoutecoreError):
    """A referenced object (request id, artifact) does not exist."""

    status = "NOT_FOUND"


class ResourceExhausted(RoutecoreError):
    """A budget, quota or rate limit refuses the request."""

    status = "RESOURCE_EXHAUSTED"
    retryable = True


class DeadlineExceeded(RoutecoreError):
    """The caller's deadline ran out before an answer was ready."""

    status = "DEADLINE_EXCEEDED"


class Cancelled(RoutecoreError):
    """The caller cancelled the RPC (or went away) before it finished."""

    status = "CANCELLED"


@dataclass(frozen=True, slots=True)
class AttemptError:
    """One failed attempt inside a fallback chain."""

    model: str
    deployment: str
    error: str
    provider: str = ""
    duration_ms: float = 0.0
    retry: int = 0
    kind: str = ""


class ProviderError(RoutecoreError):
    """One provider call failed. `retryable` and `retry_after` steer resilience."""

    status = "UNAVAILABLE"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
        http_status: int | None = None,
        kind: str = "error",
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.http_status = http_status
        self.kind = kind


class AllProvidersFailed(RoutecoreError):
    """Every candidate in the fallback chain failed; carries every attempt."""

    status = "UNAVAILABLE"
    retryable = True

    def __init__(self, attempts: Sequence[AttemptError]) -> None:
        self.attempts = list(attempts)
        detail = "; ".join(f"{a.model}@{a.deployment}: {a.error}" for a in self.attempts)
        super().__init__(f"all providers failed ({detail or 'no attempt was possible'})")


class StreamInterrupted(RoutecoreError):
    """A stream failed after its first chunk reached the client."""

    status = "UNAVAILABLE"


class StateUnavailable(RoutecoreError):
    """The shared state backend (Redis) cannot be reached; what needs it fails closed."""

    status = "UNAVAILABLE"
    retryable = True
