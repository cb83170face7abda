"""Anthropic Messages API: POST {base_url}/v1/messages with x-api-key and anthropic-version.

System turns go to the top-level `system` field; `json_mode` adds a system
instruction (the API has no JSON switch). Streaming parses the SSE events
message_start / content_block_delta / message_delta / message_stop / error.
Endpoint options: `version` (default 2023-06-01), `headers`.
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

_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
         "tool_use": "tool_calls", "refusal": "content_filter"}
JSON_INSTRUCTION = "Respond with a single valid JSON object and nothing else."


class AnthropicProvider(HttpProvider):
    kind = "anthropic"
    path = "messages"

    def __init__(self, endpoint: Endpoint, pool: HttpPool) -> None:
        super().__init__(endpoint, pool,
                         {"anthropic-version": str(endpoint.options.get("version", "2023-06-01"))})
        if self._api_key:
            self._headers["x-api-key"] = self._api_key

    def _body(self, call: ProviderCall, stream: bool) -> dict[str, Any]:
        system = [m.content for m in call.messages if m.role in ("system", "developer")]
        if call.json_mode:
            system.append(JSON_INSTRUCTION)
        msgs = [{"role": "assistant" if m.role == "assistant" else "user", "content": m.content}
                for m in call.messages if m.role not in ("system", "developer")]
        body: dict[str, Any] = {"model": call.model_id, "messages": msgs,
                                "max_tokens": call.max_output_tokens or 1024,
                                "temperature": call.temperature}
        if system:
            body["system"] = "\n\n".join(system)
        if stream:
            body["stream"] = True
        return body

    def _response(self, data: Any) -> ProviderResponse:
        content = "".join(b.get("text", "") for b in data["content"] if b.get("type") == "text")
        u = data.get("usage") or {}
        usage = Usage(int(u.get("input_tokens") or 0), int(u.get("output_tokens") or 0)) \
            if "input_tokens" in u else None
        return ProviderResponse(content, _STOP.get(str(data.get("stop_reason")), "stop"), usage)

    async def _chunks(self, events: AsyncIterator[tuple[str, str]],
                      where: str) -> AsyncIterator[StreamChunk]:
        n_in = n_out = -1
        finish, done = "", False
        async for event, data in events:
            try:
                ev = json.loads(data)
            except ValueError as exc:
                raise ProviderError(f"{where}: malformed event", kind="stream_cut") from exc
            kind = ev.get("type", event)
            if kind == "message_start":
                u = (ev.get("message") or {}).get("usage") or {}
                n_in = int(u.get("input_tokens", -1))
            elif kind == "content_block_delta":
                text = (ev.get("delta") or {}).get("text") or ""
                if text:
                    yield StreamChunk(delta=text)
            elif kind == "message_delta":
                stop = (ev.get("delta") or {}).get("stop_reason")
                finish = _STOP.get(str(stop), "stop") if stop else finish
                n_out = int((ev.get("usage") or {}).get("output_tokens", n_out))
            elif kind == "message_stop":
                done = True
                break
            elif kind == "error":
                err = ev.get("error") or {}
                overloaded = err.get("type") == "overloaded_error"
                raise ProviderError(f"{where}: stream error: {err.get('message', err)}",
                                    kind="server" if overloaded else "stream_cut")
        if not done:
            raise ProviderError(f"{where}: stream ended without message_stop", kind="stream_cut")
        usage = Usage(n_in, n_out) if n_in >= 0 and n_out >= 0 else None
        yield StreamChunk(finish_reason=finish or "stop", usage=usage)
