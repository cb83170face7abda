"""The provider interface and the mapping of upstream failures onto `ProviderError`.

Every provider (OpenAI-compatible, Anthropic, simulated) implements `Provider`:
`complete(call, timeout)` and `stream(call, timeout)`. Failures are always a
`ProviderError` whose `kind` is one of: rate_limit, server, timeout,
connection, context_overflow, auth, bad_request, stream_cut, error.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

from routecore.calling.providers.redaction import MAX_SCAN, redact
from routecore.calling.types import Usage
from routecore.config import Endpoint
from routecore.domain import Message
from routecore.errors import ProviderError

if TYPE_CHECKING:
    import aiohttp

    from routecore.calling.providers.pool import HttpPool

# What a malformed upstream payload raises while it is picked apart.
MALFORMED = (ValueError, KeyError, IndexError, TypeError, AttributeError)


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One upstream request, already resolved to a deployment's `model_id`."""

    model: str  # routecore model name
    model_id: str  # the upstream's name for it
    messages: tuple[Message, ...]
    max_output_tokens: int
    temperature: float = 0.0
    json_mode: bool = False
    logprobs: bool = False
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    text: str
    finish_reason: str = "stop"
    usage: Usage | None = None  # None when the upstream reported none
    logprobs: tuple[float, ...] | None = None  # per output token, when returned


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """A non-empty text delta, or the end marker (finish_reason and/or usage set)."""

    delta: str = ""
    finish_reason: str = ""
    usage: Usage | None = None


# An upstream error's message as callers see it: masked first, then cut to this.
MESSAGE_CHARS = 500
# Error-body text kept before masking (the mask and the cut come after, in Provider.redact).
DETAIL_CHARS = MAX_SCAN


class Provider(ABC):
    """One upstream endpoint. API keys are read once, at construction, and never shown."""

    kind: str = "base"

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.name = endpoint.name
        self.timeout_s = endpoint.timeout_s
        self._api_key = os.environ.get(endpoint.api_key_env, "") if endpoint.api_key_env else ""

    @abstractmethod
    async def complete(self, call: ProviderCall, timeout: float) -> ProviderResponse:
        """One non-streaming call; must finish within `timeout` seconds."""

    @abstractmethod
    def stream(self, call: ProviderCall, timeout: float) -> AsyncIterator[StreamChunk]:
        """A streaming call: text deltas, then one final chunk with finish_reason/usage.

        A stream that ends without its end marker raises ProviderError(kind="stream_cut").
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release resources (HTTP sessions are owned by the pool)."""

    def redact(self, exc: ProviderError) -> ProviderError:
        """`exc` with this provider's API key masked in any case or part (upstreams echo bad
        keys in error bodies), then its message cut to MESSAGE_CHARS: masking first, so a
        cut can never leave a piece of the key behind."""
        exc.message = redact(exc.message, self._api_key, MESSAGE_CHARS)
        exc.args = (exc.message,)
        return exc

    def __repr__(self) -> str:
        key = "set" if self._api_key else "unset"
        return (f"{type(self).__name__}(endpoint={self.name!r}, "
                f"base_url={self.endpoint.base_url!r}, api_key=<redacted:{key}>)")

    __str__ = __repr__


def join_url(base_url: str, path: str) -> str:
    """`https://api.x.com` + `chat/completions` -> `.../v1/chat/completions`; keeps a /vN."""
    base = base_url.rstrip("/")
    last = base.rsplit("/", 1)[-1]
    if not (len(last) >= 2 and last[0] == "v" and last[1:].isdigit()):
        base += "/v1"
    return f"{base}/{path}"


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date.

    Non-finite numbers ("inf", "nan") are ignored; a date without a zone
    ("-0000") is UTC, as HTTP dates always are.
    """
    ms = _finite(headers.get("retry-after-ms"))
    if ms is not None:
        return max(0.0, ms / 1000.0)
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


def _finite(value: str | None) -> float | None:
    if not value:
        return None
    try:
        x = float(value)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


_OVERFLOW_MARKERS = ("context_length_exceeded", "maximum context length", "prompt is too long",
                     "context window", "too many tokens")


def error_from_status(status: int, body: str, headers: Mapping[str, str],
                      where: str) -> ProviderError:
    """Map an HTTP error response to a ProviderError with the right kind and retryability."""
    detail = _error_detail(body)
    msg = f"{where}: HTTP {status}: {detail}"  # cut by Provider.redact, after masking
    if status == 429:
        return ProviderError(msg, retryable=True, retry_after=parse_retry_after(headers),
                             http_status=status, kind="rate_limit")
    if status >= 500 or status == 408:
        return ProviderError(msg, retryable=True, retry_after=parse_retry_after(headers),
                             http_status=status, kind="server")
    low = body.lower()
    if status in (400, 413) and any(m in low for m in _OVERFLOW_MARKERS):
        return ProviderError(msg, retryable=False, http_status=status, kind="context_overflow")
    if status in (401, 403):
        return ProviderError(msg, retryable=False, http_status=status, kind="auth")
    return ProviderError(msg, retryable=False, http_status=status, kind="bad_request")


def _error_detail(body: str) -> str:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return body.strip()[:DETAIL_CHARS]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("type") or err)[:DETAIL_CHARS]
        return str(err)[:DETAIL_CHARS]
    return str(data)[:DETAIL_CHARS]


def client_error(exc: BaseException, where: str, *, streaming: bool = False) -> ProviderError:
    """Map an aiohttp/transport exception to a ProviderError."""
    import aiohttp  # local: base.py stays importable without touching the network stack

    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return ProviderError(f"{where}: timed out", kind="timeout")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ProviderError(f"{where}: response cut: {exc}",
                             kind="stream_cut" if streaming else "connection")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return ProviderError(f"{where}: connection failed: {type(exc).__name__}: {exc}",
                             kind="connection")
    return ProviderError(f"{where}: {type(exc).__name__}: {exc}", kind="error")


class HttpProvider(Provider):
    """A JSON-over-HTTP upstream on the shared pool: posting, SSE, and error mapping.

    Subclasses give the URL path, their headers, `_body`, `_response` (a parsed
    JSON answer) and `_chunks` (SSE events to StreamChunks, raising
    stream_cut when the end marker is missing). Transport failures, HTTP error
    statuses and malformed payloads all become ProviderErrors with the key masked.
    """

    path = ""

    def __init__(self, endpoint: Endpoint, pool: HttpPool, headers: Mapping[str, str]) -> None:
        super().__init__(endpoint)
        self._pool = pool
        self._url = join_url(endpoint.base_url, self.path)
        extra = dict(endpoint.options.get("headers") or {})
        self._headers = {"content-type": "application/json", **headers,
                         **{str(k): str(v) for k, v in extra.items()}}

    @abstractmethod
    def _body(self, call: ProviderCall, stream: bool) -> dict[str, Any]:
        """The request body."""

    @abstractmethod
    def _response(self, data: Any) -> ProviderResponse:
        """The answer in a parsed JSON response (may raise any of MALFORMED)."""

    @abstractmethod
    def _chunks(self, events: AsyncIterator[tuple[str, str]],
                where: str) -> AsyncIterator[StreamChunk]:
        """The stream's chunks from its SSE events (may raise any of MALFORMED)."""

    @asynccontextmanager
    async def _post(self, call: ProviderCall, stream: bool, timeout: float,
                    ) -> AsyncIterator[aiohttp.ClientResponse]:
        import aiohttp

        t = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout) \
            if stream else aiohttp.ClientTimeout(total=timeout)
        async with self._pool.session(self.endpoint).post(
                self._url, json=self._body(call, stream), headers=self._headers,
                timeout=t) as resp:
            if resp.status >= 400:
                raise error_from_status(resp.status, await resp.text(), resp.headers,
                                        f"{self.name}/{call.model_id}")
            yield resp

    async def complete(self, call: ProviderCall, timeout: float) -> ProviderResponse:
        import aiohttp

        where = f"{self.name}/{call.model_id}"
        try:
            async with self._post(call, False, timeout) as resp:
                text = await resp.text()
            return self._response(json.loads(text))
        except ProviderError as exc:
            self.redact(exc)
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self.redact(client_error(exc, where)) from exc
        except MALFORMED as exc:
            raise ProviderError(f"{where}: malformed response", kind="server") from exc

    async def stream(self, call: ProviderCall, timeout: float) -> AsyncIterator[StreamChunk]:
        import aiohttp

        where = f"{self.name}/{call.model_id}"
        try:
            async with self._post(call, True, timeout) as resp:
                async for chunk in self._chunks(iter_sse(resp.content), where):
                    yield chunk
        except ProviderError as exc:
            self.redact(exc)
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self.redact(client_error(exc, where, streaming=True)) from exc
        except MALFORMED as exc:
            raise ProviderError(f"{where}: malformed stream event", kind="stream_cut") from exc


async def iter_sse(lines: AsyncIterable[bytes]) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent-events body."""
    event: str = ""
    data: list[str] = []
    async for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    if data:
        yield event or "message", "\n".join(data)
