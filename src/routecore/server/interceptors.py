"""The server's one interceptor: request id, one log line per RPC, error mapping.

This is the only place a routecore error becomes a gRPC status. Anything that
is not a `RoutecoreError` is a bug: it is logged with its traceback and the
caller gets INTERNAL, and the server keeps serving.

It wraps the Router service's handlers once, when they are registered
(`RpcInterceptor.register`), rather than as a grpc.aio server interceptor: that
one runs an extra coroutine and handler lookup on every RPC, health checks
included. The OK access line is handed to the log listener thread as it is
(`logs.HotLog`); formatting it at the call site cost more than the routing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any

import grpc
import structlog

from routecore.domain import RequestIds, check_request_id
from routecore.errors import (
    Cancelled,
    DeadlineExceeded,
    InvalidRequest,
    RoutecoreError,
    cap_message,
)
from routecore.logs import HotLog
from routecore.server.identity import Authenticator, Identity, authorization_of
from routecore.server.records import RecordFn, Trace, trace_var

log = structlog.get_logger("routecore.rpc")
access = HotLog("routecore.rpc")

# Per-RPC state for the servicer: each grpc.aio RPC runs in its own task, so
# these are isolated per call.
request_id_var: ContextVar[str] = ContextVar("routecore_request_id", default="")
log_fields_var: ContextVar[dict[str, Any]] = ContextVar("routecore_log_fields")
# The caller's identity when auth is on (None: auth off).
identity_var: ContextVar[Identity | None] = ContextVar("routecore_identity", default=None)

_STATUS = {name: getattr(grpc.StatusCode, name) for name in (
    "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED",
    "UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "PERMISSION_DENIED", "CANCELLED",
    "UNAUTHENTICATED",
)}


def status_of(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status for an exception: the taxonomy's, else INTERNAL."""
    if isinstance(exc, RoutecoreError):
        return _STATUS.get(exc.status, grpc.StatusCode.INTERNAL)
    return grpc.StatusCode.INTERNAL


class _RequestIds:
    """The caller's x-request-id (bounded: length and charset), else 128 random bits."""

    def __init__(self) -> None:
        self._new = RequestIds()

    def __call__(self, context: grpc.aio.ServicerContext) -> str:
        for key, value in context.invocation_metadata() or ():
            if key == "x-request-id" and value:
                return check_request_id(str(value), "x-request-id")
        return self._new()


def _authenticate(authenticator: Authenticator, context: grpc.aio.ServicerContext,
                  fields: dict[str, Any]) -> None:
    """Prove the caller (auth on): the identity goes to `identity_var` and the log line."""
    ident = authenticator.authenticate(authorization_of(context.invocation_metadata()))
    identity_var.set(ident)
    fields["tenant"] = ident.tenant
    fields["key_id"] = ident.key_id


class _Handlers:
    """Stands in for the server while generated `add_XServicer_to_server` code runs,
    keeping the method handlers it builds."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, generic: Any) -> None:
        pass  # the same handlers also arrive through add_registered_method_handlers

    def add_registered_method_handlers(self, service: str,
                                       handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.service, self.handlers = service, handlers


class RpcInterceptor:
    """request id -> log line -> error mapping, for unary and server-streaming RPCs."""

    def __init__(self, access_log: bool = True,
                 record: RecordFn | None = None, authenticator: Authenticator | None = None) -> None:
        self._access_log = access_log
        # Recorder.put: (rpc, request id, t0, status, exception, trace); only enqueues.
        self._record = record
        self._request_id = _RequestIds()
        self._authenticator = authenticator

    def register(self, add_to_server: Callable[[Any, Any], None], servicer: Any,
                 server: grpc.aio.Server) -> None:
        """`add_to_server(servicer, server)` (a generated function), with every
        handler wrapped; other services (health, reflection) are left as they are."""
        got = _Handlers()
        add_to_server(servicer, got)
        wrapped = {name: self._wrap(name, h) for name, h in got.handlers.items()}
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(got.service, wrapped),))
        server.add_registered_method_handlers(got.service, wrapped)

    def _finish(self, rpc: str, rid: str, t0: float, exc: BaseException | None,
                context: grpc.aio.ServicerContext, fields: dict[str, Any]) -> None:
        record = self._record
        if exc is None:
            if record is not None:
                record(rpc, rid, t0, "OK", None, trace_var.get())
            if self._access_log and access.enabled():
                access.info("rpc", {"rpc": rpc, "request_id": rid, "status": "OK",
                                    "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
                                    **fields})
            return
        code = status_of(exc)
        if record is not None:
            trace, ident = trace_var.get(), identity_var.get()
            if trace is None and ident is not None:  # refused before the servicer's trace
                trace = Trace(None, caller=(ident.tenant, ident.user, ident.key_id))
            record(rpc, rid, t0, code.name, exc, trace)
        level = log.error if code is grpc.StatusCode.INTERNAL else log.info
        level("rpc", rpc=rpc, request_id=rid, status=code.name, error=cap_message(str(exc)),
              latency_ms=round((time.perf_counter() - t0) * 1000, 3),
              exc_info=code is grpc.StatusCode.INTERNAL, **fields)

    def _wrap(self, rpc: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        finish = self._finish
        _request_id = self._request_id
        auth = self._authenticator
        # Requests arrive as bytes and are parsed inside the wrapper, so a corrupt
        # message is an INVALID_ARGUMENT with a message, not grpc's bare UNKNOWN.
        parse = _parser(rpc, handler.request_deserializer)

        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                t0 = time.perf_counter()
                rid = ""
                fields: dict[str, Any] = {}
                log_fields_var.set(fields)
                try:
                    rid = _request_id(context)
                    request_id_var.set(rid)
                    if auth is not None:
                        _authenticate(auth, context, fields)
                    response = await inner(parse(request), context)
                except grpc.aio.AbortError:
                    raise
                except asyncio.CancelledError:  # deadline passed or client gone: still one line
                    finish(rpc, rid, t0, _ended(context), context, fields)
                    raise
                except Exception as exc:  # mapped here and only here
                    finish(rpc, rid, t0, exc, context, fields)
                    await context.abort(status_of(exc), _message(exc))
                finish(rpc, rid, t0, None, context, fields)
                return response

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=None,
                response_serializer=handler.response_serializer)

        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                t0 = time.perf_counter()
                rid = ""
                fields: dict[str, Any] = {}
                log_fields_var.set(fields)
                try:
                    rid = _request_id(context)
                    request_id_var.set(rid)
                    if auth is not None:
                        _authenticate(auth, context, fields)
                    async for item in inner_stream(parse(request), context):
                        yield item
                except grpc.aio.AbortError:
                    raise
                except asyncio.CancelledError:
                    finish(rpc, rid, t0, _ended(context), context, fields)
                    raise
                except Exception as exc:
                    finish(rpc, rid, t0, exc, context, fields)
                    await context.abort(status_of(exc), _message(exc))
                finish(rpc, rid, t0, None, context, fields)

            return grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=None,
                response_serializer=handler.response_serializer)
        return handler


def _parser(rpc: str, deserialize: Callable[[bytes], Any] | None) -> Callable[[Any], Any]:
    if deserialize is None:
        return lambda raw: raw

    def parse(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise InvalidRequest(f"{rpc}: the request is not a valid protobuf message ({exc})") from exc

    return parse


# The server's deadline is the client's timeout counted from when the request arrived, so it
# ends later than the client's own; the client cancels at its deadline. A cancel this close
# to the server's deadline is taken as the deadline (on a loaded host the gap grows).
DEADLINE_SKEW_S = 0.25


def _ended(context: grpc.aio.ServicerContext) -> RoutecoreError:
    """Why grpc cancelled a running RPC: its deadline passed, or the client cancelled it."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= DEADLINE_SKEW_S:
        return DeadlineExceeded("deadline exceeded (the client's deadline passed)")
    return Cancelled("cancelled by the client")


def _message(exc: BaseException) -> str:
    if isinstance(exc, RoutecoreError):
        return cap_message(exc.message)
    return f"internal error ({type(exc).__name__}); see the server log"
