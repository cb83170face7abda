"""The simulated provider as a standalone HTTP upstream (OpenAI- and Anthropic-compatible).

`make_sim_app(config)` builds the aiohttp app; `SimServer` runs it in the
current loop (tests, benchmarks: port 0 picks a free port); `run_sim_server`
blocks serving it (the CLI's `routecore sim-provider --port N`).

Routes: POST /v1/chat/completions (JSON or SSE with stream_options.include_usage,
logprobs), POST /v1/messages (Anthropic Messages, JSON or SSE), GET /v1/models,
GET /health. Behaviour per model: see `routecore.calling.providers.simulated`.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from routecore.calling.providers.base import ProviderCall
from routecore.calling.providers.simulated import SimEngine, SimPlan
from routecore.config import Config
from routecore.domain import Message

ENGINE_KEY: web.AppKey[SimEngine] = web.AppKey("engine", SimEngine)


def make_sim_app(config: Config | None = None, *, seed: int = 0,
                 engine: SimEngine | None = None) -> web.Application:
    """An aiohttp app serving the simulated models of `config` (None: generic models)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[ENGINE_KEY] = engine or SimEngine(config, seed)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_post("/v1/messages", _messages)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/health", _health)
    return app


class SimServer:
    """Runs the sim app on host:port in the running loop; `async with SimServer(cfg) as s`."""

    def __init__(self, config: Config | None = None, host: str = "127.0.0.1", port: int = 0,
                 *, seed: int = 0) -> None:
        self.app = make_sim_app(config, seed=seed)
        self.host, self.port = host, port
        self._runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None,
                                     shutdown_timeout=0.5)

    @property
    def engine(self) -> SimEngine:
        return self.app[ENGINE_KEY]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> SimServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # the bound socket tells the ephemeral port
            self.port = int(self._runner.addresses[0][1])
        return self

    async def aclose(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> SimServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def run_sim_server(host: str, port: int, config: Config | None) -> None:
    """Serve until interrupted (blocking)."""
    web.run_app(make_sim_app(config), host=host, port=port, access_log=None,
                handler_cancellation=True, print=None)


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _models(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    cfg = engine._config
    names = sorted(cfg.models) if cfg is not None else []
    return web.json_response({"object": "list",
                              "data": [{"id": n, "object": "model", "owned_by": "routecore-sim"}
                                       for n in names]})


def _call(body: dict[str, Any], anthropic: bool) -> ProviderCall:
    msgs = [Message(str(m.get("role", "user")), _content(m.get("content", "")))
            for m in body.get("messages") or []]
    if anthropic and body.get("system"):
        msgs.insert(0, Message("system", _content(body["system"])))
    fmt = body.get("response_format") or {}
    max_out = body.get("max_tokens") or body.get("max_completion_tokens") or 0
    model = str(body.get("model", ""))
    return ProviderCall(model=model, model_id=model, messages=tuple(msgs),
                        max_output_tokens=int(max_out),
                        temperature=float(body.get("temperature") or 0.0),
                        json_mode=isinstance(fmt, dict) and fmt.get("type") == "json_object",
                        logprobs=bool(body.get("logprobs")))


def _content(c: Any) -> str:
    if isinstance(c, list):  # content blocks
        return "".join(str(b.get("text", "")) for b in c if isinstance(b, dict))
    return str(c)


def _drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()


async def _fault(request: web.Request, plan: SimPlan, anthropic: bool) -> web.Response | None:
    """Sleep the planned latency and answer the planned failure, if any."""
    if plan.fault == "timeout":
        await asyncio.sleep(plan.timeout_s)
        return _error(504, "upstream timeout", "timeout", anthropic)
    if plan.latency_s > 0:
        await asyncio.sleep(plan.latency_s)
    if plan.fault == "rate_limit":
        resp = _error(429, "Rate limit reached", "rate_limit_error", anthropic)
        resp.headers["retry-after"] = str(max(1, math.ceil(plan.retry_after_s)))
        resp.headers["retry-after-ms"] = str(int(plan.retry_after_s * 1000))
        return resp
    if plan.fault == "server":
        return _error(500, "The server had an error", "server_error", anthropic)
    if plan.fault == "context_overflow":
        return _error(400, "This model's maximum context length is exceeded "
                      "(context_length_exceeded)", "invalid_request_error", anthropic,
                      code="context_length_exceeded")
    return None


def _error(status: int, message: str, etype: str, anthropic: bool,
           code: str | None = None) -> web.Response:
    if anthropic:
        return web.json_response({"type": "error", "error": {"type": etype, "message": message}},
                                 status=status)
    return web.json_response({"error": {"message": message, "type": etype, "code": code}},
                             status=status)


async def _prepare(request: web.Request, anthropic: bool,
                   ) -> tuple[dict[str, Any], ProviderCall, SimPlan, web.StreamResponse | None]:
    """Read the request and plan it: (body, call, plan, the failure response or None)."""
    body = await request.json()
    call = _call(body, anthropic)
    plan = request.app[ENGINE_KEY].plan(call)
    if plan.fault == "drop":
        _drop(request)
        return body, call, plan, web.Response(status=500)
    return body, call, plan, await _fault(request, plan, anthropic)


async def _send_pieces(request: web.Request, plan: SimPlan,
                       send: Callable[[str], Awaitable[None]]) -> bool:
    """Send each answer piece at the planned pace; False when the plan cuts the stream."""
    for i, piece in enumerate(plan.answer.pieces):
        if i == plan.cut_after:
            _drop(request)
            return False
        if i and plan.piece_delay_s:
            await asyncio.sleep(plan.piece_delay_s)
        await send(piece)
    return True


async def _chat(request: web.Request) -> web.StreamResponse:
    body, call, plan, failed = await _prepare(request, anthropic=False)
    if failed is not None:
        return failed
    a = plan.answer
    rid, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())
    usage = {"prompt_tokens": a.input_tokens, "completion_tokens": len(a.pieces),
             "total_tokens": a.input_tokens + len(a.pieces)}
    if not body.get("stream"):
        choice: dict[str, Any] = {"index": 0, "finish_reason": a.finish_reason,
                                  "message": {"role": "assistant", "content": a.text}}
        if call.logprobs:
            choice["logprobs"] = {"content": [{"token": p, "logprob": lp}
                                              for p, lp in zip(a.pieces, a.logprobs, strict=False)]}
        return web.json_response({"id": rid, "object": "chat.completion", "created": created,
                                  "model": call.model_id, "choices": [choice], "usage": usage})
    resp = web.StreamResponse(headers={"content-type": "text/event-stream",
                                       "cache-control": "no-cache"})
    await resp.prepare(request)

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        c = {"id": rid, "object": "chat.completion.chunk", "created": created,
             "model": call.model_id,
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(c).encode() + b"\n\n"

    async def piece(text: str) -> None:
        await resp.write(chunk({"content": text}))

    await resp.write(chunk({"role": "assistant", "content": ""}))
    if not await _send_pieces(request, plan, piece):
        return resp
    await resp.write(chunk({}, a.finish_reason))
    if (body.get("stream_options") or {}).get("include_usage"):
        u = {"id": rid, "object": "chat.completion.chunk", "created": created,
             "model": call.model_id, "choices": [], "usage": usage}
        await resp.write(b"data: " + json.dumps(u).encode() + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens"}


async def _messages(request: web.Request) -> web.StreamResponse:
    body, call, plan, failed = await _prepare(request, anthropic=True)
    if failed is not None:
        return failed
    a = plan.answer
    mid = f"msg_{uuid.uuid4().hex[:12]}"
    stop = _ANTHROPIC_STOP.get(a.finish_reason, "end_turn")
    if not body.get("stream"):
        return web.json_response({
            "id": mid, "type": "message", "role": "assistant", "model": call.model_id,
            "content": [{"type": "text", "text": a.text}], "stop_reason": stop,
            "usage": {"input_tokens": a.input_tokens, "output_tokens": len(a.pieces)}})
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)

    async def event(name: str, data: dict[str, Any]) -> None:
        await resp.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

    async def piece(text: str) -> None:
        await event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": text}})

    await event("message_start", {"type": "message_start", "message": {
        "id": mid, "type": "message", "role": "assistant", "model": call.model_id, "content": [],
        "usage": {"input_tokens": a.input_tokens, "output_tokens": 1}}})
    await event("content_block_start", {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}})
    if not await _send_pieces(request, plan, piece):
        return resp
    await event("content_block_stop", {"type": "content_block_stop", "index": 0})
    await event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop},
                                  "usage": {"output_tokens": len(a.pieces)}})
    await event("message_stop", {"type": "message_stop"})
    await resp.write_eof()
    return resp
