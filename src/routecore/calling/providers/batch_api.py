"""Provider batch APIs: many chat requests as one deferred upstream job, polled later.

The wire format is OpenAI's (also Groq's, Together's, vLLM's): a JSONL input
file uploaded to `POST /v1/files` (purpose "batch"), one line per request,

    {"custom_id": "7", "method": "POST", "url": "/v1/chat/completions", "body": {...}}

then `POST /v1/batches {input_file_id, endpoint, completion_window: "24h"}`,
polled with `GET /v1/batches/{id}` until a terminal status; its
`output_file_id` (and `error_file_id`) are JSONL read from
`GET /v1/files/{id}/content`, one line per request:

    {"custom_id": "7", "response": {"status_code": 200, "body": {chat completion}},
     "error": null}

`OpenAIBatchAPI` speaks it over HTTP; the in-process simulated provider plays
the same files (see `simulated.SimBatches`), and both read results with
`parse_output`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from routecore.calling.providers.base import (
    MALFORMED,
    ProviderCall,
    ProviderResponse,
    client_error,
    error_from_status,
    join_url,
)
from routecore.errors import ProviderError

if TYPE_CHECKING:
    from routecore.calling.providers.openai import OpenAIProvider

# Statuses after which a batch changes no more.
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True, slots=True)
class LineResult:
    """One request's outcome in a finished batch: a response, or an error message."""

    custom_id: str
    response: ProviderResponse | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class ProviderBatch:
    id: str
    status: str
    results: tuple[LineResult, ...] = ()  # filled once the status is terminal
    error: str = ""  # why the whole batch failed, when it did


class BatchAPI(ABC):
    """One endpoint's batch API."""

    @abstractmethod
    async def submit(self, lines: Sequence[tuple[str, ProviderCall]], timeout: float) -> str:
        """Upload the requests (custom_id, call) and start the batch; returns its id."""

    @abstractmethod
    async def poll(self, batch_id: str, timeout: float) -> ProviderBatch:
        """The batch's status; with its results once it is terminal."""


def input_line(custom_id: str, body: dict[str, Any]) -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                       "body": body}, separators=(",", ":"))


def parse_output(content: str, to_response: Callable[[Any], ProviderResponse],
                 ) -> list[LineResult]:
    """The results in an output or error file (JSONL); a malformed line is an error result."""
    out: list[LineResult] = []
    for n, raw in enumerate(content.splitlines()):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            cid = str(line["custom_id"])
        except MALFORMED:
            out.append(LineResult(f"?line{n}", None, f"malformed result line {n}"))
            continue
        resp, err = line.get("response") or {}, line.get("error")
        status = resp.get("status_code", 0) if isinstance(resp, dict) else 0
        if err or status != 200:
            detail = err if err else (resp.get("body") if isinstance(resp, dict) else resp)
            out.append(LineResult(cid, None, f"HTTP {status}: {_detail(detail)}"[:300]))
            continue
        try:
            out.append(LineResult(cid, to_response(resp["body"])))
        except MALFORMED:
            out.append(LineResult(cid, None, "malformed response body"))
    return out


def _detail(x: Any) -> str:
    if isinstance(x, dict):
        inner = x.get("error", x)
        if isinstance(inner, dict):
            return str(inner.get("message") or inner.get("code") or inner)
        return str(inner)
    return str(x)


class OpenAIBatchAPI(BatchAPI):
    """`/v1/files` + `/v1/batches` on an OpenAI-compatible endpoint (its pool and key)."""

    def __init__(self, provider: OpenAIProvider) -> None:
        self._p = provider
        base = provider.endpoint.base_url
        self._files, self._batches = join_url(base, "files"), join_url(base, "batches")
        self._auth = {k: v for k, v in provider._headers.items() if k != "content-type"}

    async def _call(self, method: str, url: str, timeout: float, **kw: Any) -> str:
        import aiohttp

        where = f"{self._p.name}/batch"
        try:
            async with self._p._pool.session(self._p.endpoint).request(
                    method, url, headers=self._auth, timeout=aiohttp.ClientTimeout(total=timeout),
                    **kw) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise error_from_status(resp.status, text, resp.headers, where)
                return text
        except ProviderError as exc:
            raise self._p.redact(exc) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._p.redact(client_error(exc, where)) from exc

    async def submit(self, lines: Sequence[tuple[str, ProviderCall]], timeout: float) -> str:
        import aiohttp

        jsonl = "\n".join(input_line(cid, self._p._body(call, False)) for cid, call in lines)
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", jsonl.encode(), filename="routecore-batch.jsonl",
                       content_type="application/jsonl")
        try:
            file_id = json.loads(await self._call("POST", self._files, timeout, data=form))["id"]
            created = json.loads(await self._call(
                "POST", self._batches, timeout,
                json={"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                      "completion_window": "24h"}))
            return str(created["id"])
        except MALFORMED as exc:
            raise ProviderError(f"{self._p.name}/batch: malformed response", kind="server") from exc

    async def poll(self, batch_id: str, timeout: float) -> ProviderBatch:
        try:
            b = json.loads(await self._call("GET", f"{self._batches}/{batch_id}", timeout))
            status = str(b["status"])
            if status not in TERMINAL:
                return ProviderBatch(batch_id, status)
            results: list[LineResult] = []
            for key in ("output_file_id", "error_file_id"):
                if b.get(key):
                    text = await self._call("GET", f"{self._files}/{b[key]}/content", timeout)
                    results.extend(parse_output(text, self._p._response))
            errors = (b.get("errors") or {}).get("data") or []
            why = "; ".join(str(e.get("message", e)) for e in errors)[:300]
            return ProviderBatch(batch_id, status, tuple(results), why)
        except MALFORMED as exc:
            raise ProviderError(f"{self._p.name}/batch: malformed response", kind="server") from exc
