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


# Longest echo of one caller-supplied value inside an error message or log line:
# a 1 MB strategy must not become a 1 MB status (gRPC refuses headers over ~8 KB).
ECHO_CHARS = 80
# Longest status message the server sends; the interceptor cuts anything longer.
MAX_MESSAGE_CHARS = 2000
# Rejection reasons a "no model fits" message lists before saying how many more.
NO_MODEL_REASONS = 8


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """`repr(value)` for a message, cut to `limit` characters with the full length said."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} chars)"


def echo_list(values: Sequence[object], limit: int = 5) -> str:
    """The first `limit` values echoed, and how many more there are."""
    shown = ", ".join(echo(v) for v in values[:limit])
    more = len(values) - limit
    return f"{shown} and {more} more" if more > 0 else shown


def cap_message(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`message` cut to `limit` characters (the last line of defence for statuses and logs)."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... ({len(message)} chars, cut)"


class InvalidRequest(RoutecoreError):
    """The request is malformed: empty prompt, negative limit, bad field."""

    status = "INVALID_ARGUMENT"


class UnknownModel(InvalidRequest):
    """A model named in the request is not in the registry."""


class RequestTooLarge(InvalidRequest):
    """The request body is over the server's size limit (HTTP 413)."""


class MethodNotAllowed(InvalidRequest):
    """An HTTP method the path does not serve (HTTP 405)."""


class Unauthenticated(RoutecoreError):
    """No valid API key: the authorization metadata is missing, malformed or unknown."""

    status = "UNAUTHENTICATED"


class PermissionDenied(RoutecoreError):
    """The caller's key is valid but may not use this model, strategy or tenant."""

    status = "PERMISSION_DENIED"


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
        # Models grouped by reason, rarest reason first (a lone model's specific reason
        # beats "15 models: not in allow_models"), and only the first few groups: a
        # registry of thousands must not make a status larger than gRPC's metadata limit.
        groups: dict[str, list[str]] = {}
        for model, reason in self.reasons.items():
            groups.setdefault(reason, []).append(model)
        ranked = sorted(groups.items(), key=lambda g: len(g[1]))
        parts = [f"{ms[0]}: {r}" if len(ms) == 1 else f"{len(ms)} models ({echo_list(ms, 3)}): {r}"
                 for r, ms in ranked[:NO_MODEL_REASONS]]
        if len(ranked) > NO_MODEL_REASONS:
            parts.append(f"and {len(ranked) - NO_MODEL_REASONS} more reasons")
        super().__init__(f"no model satisfies the constraints ({len(self.reasons)} models "
                         f"rejected: {'; '.join(parts)})")


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
    kind = "deadline"  # an attempt it cut: the caller's time, not the upstream's failure


class AddressInUse(RoutecoreError):
    """A port to serve on cannot be bound (taken by another server or program)."""

    status = "UNAVAILABLE"


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
