"""Alert webhooks: POST a JSON document to `alerts.webhook_url`, retrying through
`Resilience` (the one owner of retry and backoff).

A 5xx, a 429, a timeout or a refused connection is retried (exponential backoff
with full jitter, a Retry-After honoured) up to `alerts.webhook_retries` times;
any other 4xx is final. Delivery runs as a background task (server/alerting.py),
never on a request's path; one aiohttp session per webhook, closed with it.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from routecore.calling.deadline import Deadline
from routecore.calling.resilience import BreakerConfig, Resilience, ResilienceConfig, RetryConfig
from routecore.errors import ProviderError

MAX_BODY = 64_000  # bytes of JSON; a larger document is cut to its summary fields


class Webhook:
    def __init__(self, url: str, *, timeout_s: float = 5.0, retries: int = 4,
                 base_delay_ms: float = 250.0, max_delay_ms: float = 8000.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        # Retries of one URL; no breaker (one endpoint, nothing to fall back to).
        self._resilience = Resilience(ResilienceConfig(
            total_timeout_s=max(60.0, (timeout_s + max_delay_ms / 1000.0) * (retries + 1)),
            retry=RetryConfig(max_attempts=retries, base_delay_ms=base_delay_ms,
                              max_delay_ms=max_delay_ms),
            breaker=BreakerConfig(enabled=False)))
        self._session: aiohttp.ClientSession | None = None
        self.tries = 0
        self.delivered = 0
        self.failed = 0

    async def send(self, document: dict[str, Any]) -> None:
        """Deliver `document`; raises ProviderError once the retries are spent."""
        body = json.dumps(document, ensure_ascii=False, default=str).encode()
        if len(body) > MAX_BODY:
            body = json.dumps({k: v for k, v in document.items()
                               if isinstance(v, (str, int, float, bool))})[:MAX_BODY].encode()

        async def once(timeout: float) -> None:
            self.tries += 1
            session = self._get()
            try:
                async with session.post(self.url, data=body,
                                        headers={"content-type": "application/json"},
                                        timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                    # The status is the answer; the body is never read (a hostile or broken
                    # receiver could stream one without end into memory).
                    if resp.status < 300:
                        return
                    retry_after = _retry_after(resp.headers.get("retry-after"))
                    retryable = resp.status >= 500 or resp.status in (408, 429)
                    raise ProviderError(f"webhook answered HTTP {resp.status}",
                                        retryable=retryable, retry_after=retry_after,
                                        http_status=resp.status,
                                        kind="server" if retryable else "bad_request")
            except aiohttp.ClientError as exc:
                raise ProviderError(f"webhook unreachable: {type(exc).__name__}",
                                    kind="connection") from exc

        try:
            await self._resilience.call("webhook", once, timeout=self.timeout_s,
                                        deadline=Deadline.none().within(
                                            self._resilience.config.total_timeout_s),
                                        on_attempt=_ignore)
        except ProviderError:
            self.failed += 1
            raise
        self.delivered += 1

    def _get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"user-agent": "routecore-alerts"})
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _ignore(retry: int, error: BaseException | None, ms: float) -> None:
    return None


def _retry_after(value: str | None) -> float | None:
    try:
        return min(60.0, max(0.0, float(value))) if value else None
    except ValueError:
        return None
