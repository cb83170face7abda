"""The simulated provider as a standalone HTTP upstream (OpenAI- and Anthropic-compatible).

`make_sim_app(config)` builds the aiohttp app; `SimServer` runs it in the
current loop (tests, benchmarks: port 0 picks a free port); `run_sim_server`
blocks serving it (the CLI's `routecore sim-provider --port N`).

Routes: POST /v1/chat/completions (JSON or SSE with stream_options.include_usage,
logprobs), POST /v1/messages (Anthropic Messages, JSON or SSE), POST /v1/files,
GET /v1/files/{id}/content, POST /v1/batches, GET /v1/batches/{id} (OpenAI's
batch API, see `simulated.SimBatches`), GET /v1/models, GET /health.
Behaviour per model: see `routecore.calling.providers.simulated`.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web

from routecore.calling.providers.base import ProviderCall
from routecore.calling.providers.simulated import (
    SimBatches,
    SimEngine,
    SimPlan,
    call_from_body,
    chat_completion,
)
from routecore.config import Config

ENGINE_KEY: web.AppKey[SimEngine] = web.AppKey("engine", SimEngine)
BATCHES_KEY: web.AppKey[SimBatches] = web.AppKey("batches", SimBatches)


def make_sim_app(config: Config | None = None, *, seed: int = 0,
                 engine: SimEngine | None = None, batch_delay_s: float = 0.0) -> web.Application:
    """An aiohttp app serving the simulated models of `config` (None: generic models)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[ENGINE_KEY] = engine or SimEngine(config, seed)
    app[BATCHES_KEY] = SimBatches(app[ENGINE_KEY], batch_delay_s)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_post("/v1/files", _upload)
    app.router.add_get("/v1/files/{file_id}/content", _file_content)
    app.router.add_post("/v1/batches", _create_batch)
    app.router.add_get("/v1/batches/{batch_id}", _get_batch)
    app.router.add_post("/v1/messages", _messages)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/health", _health)
    return app


class SimServer:
    """Runs the sim app on host:port in the running loop; `async with SimServer(cfg) as s`."""

    def __init__(self, config: Config | None = None, host: str = "127.0.0.1", port: int = 0,
                 *, seed: int = 0, batch_delay_s: float = 0.0) -> None:
        self.app = make_sim_app(config, seed=seed, batch_delay_s=batch_delay_s)
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


async def _upload(request: web.Request) -> web.Response:
    """POST /v1/files (multipart: purpose, file)."""
    purpose, content, filename = "", None, ""
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "purpose":
                purpose = (await part.text()).strip()
            elif part.name == "file":
                filename, content = part.filename or "", bytes(await part.read())
    except (ValueError, AssertionError) as exc:  # not multipart, or a broken body
        return _error(400, f"expected multipart/form-data ({exc})", "invalid_request_error",
                      False)
    if content is None or not purpose:
        return _error(400, "purpose and file are required", "invalid_request_error", False)
    return web.json_response(request.app[BATCHES_KEY].add_file(content, purpose, filename))


async def _file_content(request: web.Request) -> web.Response:
    content = request.app[BATCHES_KEY].file_content(request.match_info["file_id"])
    if content is None:
        return _error(404, "no such file", "invalid_request_error", False)
    return web.Response(body=content, content_type="application/jsonl")


async def _create_batch(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        batch = request.app[BATCHES_KEY].create(str(body["input_file_id"]),
                                                str(body.get("endpoint", "")))
    except (ValueError, KeyError, TypeError) as exc:
        return _error(400, str(exc), "invalid_request_error", False)
    return web.json_response(batch)


async def _get_batch(request: web.Request) -> web.Response:
    batch = request.app[BATCHES_KEY].get(request.match_info["batch_id"])
    if batch is None:
        return _error(404, "no such batch", "invalid_request_error", False)
    return web.json_response(batch)


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
    call = call_from_body(body, anthropic)
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
    if not body.get("stream"):
        return web.json_response(chat_completion(call, a))
    rid, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())
    usage = {"prompt_tokens": a.input_tokens, "completion_tokens": len(a.pieces),
             "total_tokens": a.input_tokens + len(a.pieces)}
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
