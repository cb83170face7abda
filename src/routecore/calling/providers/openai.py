"""OpenAI-compatible chat completions: OpenAI, vLLM, Ollama, Groq, Together, OpenRouter...

POST {base_url}/v1/chat/completions (a base_url ending in /vN keeps it). Bearer
key from the endpoint's `api_key_env`, read at construction. Streaming uses SSE
with `stream_options.include_usage`. Endpoint options: `headers` (extra
headers), `max_tokens_field` (default "max_tokens"; "max_completion_tokens" for
o-series), `logprobs` (false for upstreams that reject it), `usage_in_stream`
(false for upstreams that reject stream_options), `batch_api` (true when the
upstream serves /v1/files + /v1/batches: CompleteBatch then submits there).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from routecore.calling.providers.base import HttpProvider, ProviderCall, ProviderResponse, StreamChunk
from routecore.calling.providers.pool import HttpPool
from routecore.calling.types import Usage
from routecore.config import Endpoint
from routecore.errors import ProviderError


class OpenAIProvider(HttpProvider):
    kind = "openai"
    path = "chat/completions"

    def __init__(self, endpoint: Endpoint, pool: HttpPool) -> None:
        super().__init__(endpoint, pool, {})
        if self._api_key:
            self._headers["authorization"] = f"Bearer {self._api_key}"
        opts = endpoint.options
        self._max_tokens_field = str(opts.get("max_tokens_field", "max_tokens"))
        self._logprobs_ok = bool(opts.get("logprobs", True))
        self._usage_in_stream = bool(opts.get("usage_in_stream", True))

    def _body(self, call: ProviderCall, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": call.model_id,
            "messages": [{"role": m.role, "content": m.content} for m in call.messages],
            "temperature": call.temperature,
        }
        if call.max_output_tokens > 0:
            body[self._max_tokens_field] = call.max_output_tokens
        if call.json_mode:
            body["response_format"] = {"type": "json_object"}
        if call.logprobs and self._logprobs_ok:
            body["logprobs"] = True
        if stream:
            body["stream"] = True
            if self._usage_in_stream:
                body["stream_options"] = {"include_usage": True}
        return body

    def _response(self, data: Any) -> ProviderResponse:
        return parse_completion(data)

    async def _chunks(self, events: AsyncIterator[tuple[str, str]],
                      where: str) -> AsyncIterator[StreamChunk]:
        finish, usage, done = "", None, False
        async for _event, data in events:
            if data.strip() == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except ValueError as exc:
                raise ProviderError(f"{where}: malformed stream chunk", kind="stream_cut") from exc
            if "error" in chunk:
                raise ProviderError(f"{where}: stream error: {chunk['error']}", kind="server")
            usage = _usage(chunk.get("usage")) or usage
            for choice in chunk.get("choices") or ():
                delta = (choice.get("delta") or {}).get("content") or ""
                if choice.get("finish_reason"):
                    finish = _finish(choice["finish_reason"])
                if delta:
                    yield StreamChunk(delta=delta)
        if not done and not finish:
            raise ProviderError(f"{where}: stream ended without [DONE]", kind="stream_cut")
        yield StreamChunk(finish_reason=finish or "stop", usage=usage)


def parse_completion(data: Any) -> ProviderResponse:
    """A chat.completion object's answer (may raise any of base.MALFORMED)."""
    choice = data["choices"][0]
    content = choice["message"].get("content") or ""
    lps = None
    lp = choice.get("logprobs")
    if isinstance(lp, dict) and isinstance(lp.get("content"), list):
        lps = tuple(float(t.get("logprob", 0.0)) for t in lp["content"])
    return ProviderResponse(content, _finish(choice.get("finish_reason")),
                            _usage(data.get("usage")), lps)


def _finish(reason: Any) -> str:
    return str(reason) if reason else "stop"


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict) or "prompt_tokens" not in raw:
        return None
    return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))
