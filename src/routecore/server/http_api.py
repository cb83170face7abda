"""The OpenAI-compatible HTTP front door: aiohttp, in the gRPC server's process and loop.

    POST /v1/chat/completions   JSON or SSE (stream_options.include_usage), routed or pinned
    GET  /v1/models[/{id}]      "auto" (and routing.auto_models) plus the registry
    GET  /healthz               the process is up
    GET  /readyz                serving (503 while starting or draining)

It shares the gRPC side's `Router`, `Completer` and `Outcomes`, so both doors
see the same breakers, rate limits and decisions. JSON <-> domain conversion
and the error -> HTTP status mapping live in `http_convert`; this module only
reads bodies, calls the domain and writes responses. Every handler is wrapped
once by `_guarded`: request id, one log line, errors in OpenAI's JSON shape,
and the service never crashes on a request. With `auth` on, callers use the gRPC
door's API keys (`Authorization: Bearer`), scoped the same way; budgets, rate
limits, breakers and the audit trail are the same objects as for gRPC.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import structlog
from aiohttp import web

from routecore.calling.completion import Completer
from routecore.calling.deadline import Deadline
from routecore.calling.types import CompletionResult, StreamEvent
from routecore.config import ModelSpec
from routecore.domain import RequestIds, check_request_id
from routecore.errors import (
    Cancelled,
    MethodNotAllowed,
    NotFound,
    RequestTooLarge,
    RoutecoreError,
    cap_message,
    echo,
)
from routecore.learned.outcomes import Outcomes
from routecore.logs import HotLog
from routecore.routing.router import Router
from routecore.server import http_convert as conv
from routecore.server.identity import Authenticator, Identity
from routecore.server.records import RecordFn, Trace

log = structlog.get_logger("routecore.http")
access = HotLog("routecore.http")
# Per-request fields of the access line, kept on the aiohttp request.
LOG_FIELDS: web.RequestKey[dict[str, Any]] = web.RequestKey("routecore_log_fields", dict)
Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]
_PATHS = ("/v1/chat/completions", "/v1/models", "/healthz", "/readyz")


class HttpFrontDoor:
    """One aiohttp site over the process's router, completer and outcomes."""

    def __init__(self, router: Router, completer: Completer, outcomes: Outcomes | None,
                 access_log: bool = True, record: RecordFn | None = None,
                 authenticator: Authenticator | None = None) -> None:
        self.router = router
        # The same API keys as the gRPC door (`Authorization: Bearer <key>`); None: auth off.
        self.authenticator = authenticator
        self.record = record  # the observer's Recorder.put (audit, metrics); None: both off
        self.completer = completer
        self.outcomes = outcomes
        self.access_log = access_log
        self.ready = False
        self.port = 0
        self.max_body = router.config.server.max_message_bytes
        self._auto = router.config.routing.auto_models
        self._known = router.config.models
        self._new_id = RequestIds()
        self.app = app = web.Application(client_max_size=self.max_body)
        for method, path, handler in (
                ("POST", "/v1/chat/completions", self._chat),
                ("GET", "/v1/models", self._models), ("GET", "/v1/models/{name}", self._model),
                ("GET", "/healthz", self._healthz), ("GET", "/readyz", self._readyz)):
            app.router.add_route(method, path, self._guarded(path, handler))
        # Anything else gets OpenAI's error shape too (404, or 405 on a known path).
        app.router.add_route("*", "/{tail:.*}", self._guarded("*", self._no_route))
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int, shutdown_timeout: float = 5.0,
                    reuse_port: bool = False, ssl_context: ssl.SSLContext | None = None) -> int:
        """Bind (port 0: ephemeral; shared only with the other --workers: `reuse_port`);
        HTTPS with `ssl_context` (server.tls)."""
        runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None,
                               shutdown_timeout=shutdown_timeout)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port, backlog=1024,
                           ssl_context=ssl_context)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            self._runner = None
            raise
        self.port = int(runner.addresses[0][1])
        self.ready = True
        return self.port

    async def stop(self) -> None:
        """Stop accepting; in-flight requests get the shutdown timeout to finish."""
        self.ready = False
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the one wrapper: request id, log line, errors -------------------------------------------

    def _identity(self, request: web.Request) -> Identity | None:
        """The caller proven by its API key (auth on; Unauthenticated otherwise), or None."""
        if self.authenticator is None:
            return None
        return self.authenticator.authenticate(request.headers.get("Authorization"))

    def _guarded(self, route: str, handler: Handler) -> Callable[[web.Request],
                                                                  Awaitable[web.StreamResponse]]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            t0 = time.perf_counter()
            rid = ""
            try:
                given = request.headers.get("x-request-id")
                rid = check_request_id(given, "x-request-id") if given else self._new_id()
                resp = await handler(request, rid)
            except Exception as exc:  # mapped here and only here
                status, doc = conv.error_json(exc)
                self._log(route, rid, t0, status, exc)
                headers = {"x-routecore-request-id": rid} if rid else {}
                if status == 401:
                    headers["www-authenticate"] = "Bearer"
                return web.json_response(doc, status=status, headers=headers)
            if self.access_log and access.enabled():  # one line per request, queued as is
                access.info("http", {"route": route, "request_id": rid, "status": resp.status,
                                     "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
                                     **request.get(LOG_FIELDS, {})})
            return resp
        return guarded

    def _log(self, route: str, rid: str, t0: float, status: int, exc: BaseException) -> None:
        ms = round((time.perf_counter() - t0) * 1000, 3)
        if isinstance(exc, RoutecoreError):
            log.info("http", route=route, request_id=rid, status=status, latency_ms=ms,
                     error=cap_message(exc.message))
        else:
            log.error("http", route=route, request_id=rid, status=status, latency_ms=ms,
                      error=cap_message(repr(exc)), exc_info=exc)

    # -- handlers -----------------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> Any:
        if request.content_length is not None and request.content_length > self.max_body:
            raise RequestTooLarge(f"the request body is {request.content_length} bytes, over "
                                  f"the limit of {self.max_body} (server.max_message_bytes)")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            raise RequestTooLarge(f"the request body is over the limit of {self.max_body} bytes "
                                  f"(server.max_message_bytes)") from exc
        return conv.loads(raw)

    async def _chat(self, request: web.Request, rid: str) -> web.StreamResponse:
        t0 = time.perf_counter()
        rpc, trace, owner = "Complete", None, ""
        failed: BaseException | None = None
        try:
            ident = self._identity(request)
            trace = Trace(None, edge="http", caller=(ident.tenant, ident.user, ident.key_id)
                          if ident is not None else ("", "", ""))
            call = conv.chat_request(await self._body(request), rid, self._known, self._auto,
                                     hdrs=request.headers)
            if ident is not None:  # the same scoping as gRPC: tenant, user, key, allow lists
                owner = ident.tenant
                request[LOG_FIELDS] = {"tenant": ident.tenant, "key_id": ident.key_id}
                if call.request.route.model:
                    ident.check_model(call.request.route.model, "model")
                route = ident.scope(call.request.route, self.router.config.routing.default_strategy)
                call = replace(call, request=replace(call.request, route=route))
            trace = Trace(call.request, edge="http")
            deadline = Deadline.after(call.timeout_s)
            if call.stream:
                rpc = "CompleteStream"
                resp, failed = await self._stream(request, call, deadline, trace, owner)
                if isinstance(trace.result, StreamEvent):
                    _log_fields(request, trace.result)
                if failed is not None:  # after the 200 went out: the line says what cut it
                    request.setdefault(LOG_FIELDS, {})["error"] = cap_message(str(failed))
                return resp
            result = await self.completer.complete(call.request, deadline)
            trace.result = result
            _log_fields(request, result)
            if self.outcomes is not None and result.decision is not None:
                self.outcomes.record(result.decision, call.request.route.text(), result.cost_usd,
                                     owner=owner)
            return web.json_response(
                conv.completion_json(result, int(time.time())),
                headers=conv.headers(result.request_id, result.model, result.provider,
                                     result.decision, result.cost_usd, result.cache_hit))
        except asyncio.CancelledError:  # the client went away: recorded as such, not as OK
            failed = Cancelled("the client closed the connection")
            raise
        except Exception as exc:
            failed = exc
            raise
        finally:
            # The same audit trail and metrics as the gRPC door (Recorder.put only enqueues).
            if self.record is not None:
                status = "OK" if failed is None else (
                    failed.status if isinstance(failed, RoutecoreError) else "INTERNAL")
                self.record(rpc, rid, t0, status, failed, trace)

    async def _stream(self, request: web.Request, call: conv.ChatCall, deadline: Deadline,
                      trace: Trace, owner: str) -> tuple[web.StreamResponse, RoutecoreError | None]:
        """The SSE response, and the error that cut it after it started (if one did)."""
        events = self.completer.stream(call.request, deadline)
        try:
            # Fail-over happens before the first event: until it arrives, an error is
            # still an HTTP status, not an event in a stream that already said 200.
            ev = await anext(events)
            resp = web.StreamResponse(headers={
                "content-type": "text/event-stream", "cache-control": "no-cache",
                **conv.headers(ev.request_id, ev.model, ev.provider, ev.decision,
                               cache_hit=ev.cache_hit)})
            await resp.prepare(request)
            out = conv.ChunkWriter(ev.request_id, ev.model, int(time.time()))
            await resp.write(out.first(ev.delta))
            try:
                while not ev.done:
                    ev = await anext(events)
                    if ev.delta:
                        await resp.write(out.delta(ev.delta))
            except RoutecoreError as exc:  # after the first chunk: an error event, no [DONE]
                await resp.write(out.error(exc))
                await resp.write_eof()
                return resp, exc
            except ConnectionError:  # the client hung up between two chunks
                return resp, Cancelled("the client closed the stream")
            trace.result = ev
            await resp.write(out.finish(ev.finish_reason, ev.cost_usd, ev.attempts, ev.decision,
                                        ev.cache_hit, ev.saved_usd))
            if call.include_usage:
                await resp.write(out.usage(ev.usage))
            await resp.write(out.DONE)
            await resp.write_eof()
            if self.outcomes is not None and ev.decision is not None:
                self.outcomes.record(ev.decision, call.request.route.text(), ev.cost_usd,
                                     owner=owner)
            return resp, None
        finally:
            await events.aclose()  # type: ignore[attr-defined]  # an async generator

    def _visible(self, request: web.Request) -> dict[str, ModelSpec | None]:
        """The names this caller may use: the routing names, then its registry models."""
        ident = self._identity(request)
        allowed = ident.models if ident is not None else frozenset()
        out: dict[str, ModelSpec | None] = dict.fromkeys(self._auto)
        out.update((n, s) for n, s in self._known.items() if not allowed or n in allowed)
        return out

    async def _models(self, request: web.Request, rid: str) -> web.StreamResponse:
        data = [conv.model_json(n, s) for n, s in self._visible(request).items()]
        return web.json_response({"object": "list", "data": data})

    async def _model(self, request: web.Request, rid: str) -> web.StreamResponse:
        name = request.match_info["name"]
        visible = self._visible(request)
        if name in visible:
            return web.json_response(conv.model_json(name, visible[name]))
        raise NotFound(f"model: no model named {echo(name)}")

    async def _healthz(self, request: web.Request, rid: str) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request, rid: str) -> web.StreamResponse:
        if not self.ready:
            return web.json_response({"status": "not ready"}, status=503)
        return web.json_response({"status": "ready", "models": len(self._known),
                                  "router_version": self.router.version})

    async def _no_route(self, request: web.Request, rid: str) -> web.StreamResponse:
        if request.path in _PATHS:
            raise MethodNotAllowed(f"{request.method} is not allowed on {request.path}")
        raise NotFound(f"no route {request.method} {echo(request.path)}")


def _log_fields(request: web.Request, r: CompletionResult | StreamEvent) -> None:
    """What the access line says about an answer: model, attempts, cost, tokens."""
    fields = request.setdefault(LOG_FIELDS, {})
    fields.update(model=r.model, attempts=len(r.attempts), cost_usd=r.cost_usd)
    if r.usage is not None:
        fields.update(input_tokens=r.usage.input_tokens, output_tokens=r.usage.output_tokens)
