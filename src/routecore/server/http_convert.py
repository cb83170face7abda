"""OpenAI chat-completions JSON <-> domain conversion, and errors to OpenAI's error shape.

The HTTP front door's `convert.py`: it reads a parsed JSON body into a
`CompletionRequest` (naming the exact field of every problem), writes results
and stream chunks as OpenAI writes them, and is the one place a routecore error
becomes an HTTP status. routecore's own options ride in the body's `routecore`
object (the `extra_body` of the OpenAI SDKs):

    {"model": "auto", "messages": [...],
     "routecore": {"strategy": "cost", "constraints": {"max_cost_usd": 0.01},
                   "cascade": true, "willingness_to_pay": 0.3, "timeout_s": 10,
                   "cache": "refresh", "cache_max_age_s": 600}}

The cache options may also come as headers (`x-routecore-cache: bypass`,
`x-routecore-cache-max-age-s: 600`), used where the body does not set them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from routecore.calling.cache import MAX_AGE_S, check_request, client_hit
from routecore.calling.types import Attempt, CascadeStep, CompletionRequest, CompletionResult, Usage
from routecore.config import ModelSpec
from routecore.domain import (
    NO_CONSTRAINTS,
    ClassifierReport,
    CompressSpec,
    Constraints,
    Decision,
    Message,
    RouteRequest,
    Weights,
)
from routecore.errors import (
    InvalidRequest,
    MethodNotAllowed,
    RequestTooLarge,
    RoutecoreError,
    UnknownModel,
    cap_message,
    echo,
)
from routecore.routing.compress import check_spec
from routecore.state.budget import BudgetExceeded

MAX_HEADER_CHARS = 512
# Accepted and ignored: sampling knobs the providers behind routecore do not take.
_IGNORED = frozenset({"top_p", "seed", "presence_penalty", "frequency_penalty", "logit_bias",
                      "metadata", "store", "service_tier", "parallel_tool_calls"})
_FIELDS = frozenset({"model", "messages", "stream", "stream_options", "max_tokens", "user",
                     "max_completion_tokens", "temperature", "response_format", "n", "routecore"})
_UNSUPPORTED = frozenset({"tools", "tool_choice", "functions", "function_call", "logprobs",
                          "top_logprobs", "stop", "audio", "modalities", "prediction"})
_ROUTECORE = frozenset({"strategy", "constraints", "weights", "willingness_to_pay", "cascade",
                        "cascade_threshold", "ensemble_size", "tenant", "timeout_s", "cache",
                        "cache_max_age_s", "compress"})
CACHE_HEADER, MAX_AGE_HEADER = "x-routecore-cache", "x-routecore-cache-max-age-s"
_CONSTRAINTS = frozenset({"max_cost_usd", "max_latency_ms", "min_quality", "required_capabilities",
                          "allow_models", "deny_models", "max_output_tokens"})
_FINISH = frozenset({"stop", "length", "content_filter", "tool_calls"})


@dataclass(frozen=True, slots=True)
class ChatCall:
    """A parsed chat-completions request: what to complete and how to answer."""

    request: CompletionRequest
    stream: bool
    include_usage: bool
    timeout_s: float | None


# A \uD800-\uDFFF escape: only a body with one can decode to a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def loads(raw: bytes) -> Any:
    """Parse a request body; NaN and Infinity are not JSON and are refused, and so is a
    string with a lone surrogate escape (not Unicode text: protobuf refuses it on the gRPC
    door, and it cannot be hashed, logged or sent upstream as UTF-8)."""
    def no_constant(name: str) -> Any:
        raise InvalidRequest(f"the request body is not valid JSON ({name} is not a JSON number)")
    try:
        doc = json.loads(raw, parse_constant=no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON ({exc})") from exc
    if _SURROGATE_ESCAPE.search(raw):  # rare (a valid pair decodes to one character)
        _check_text(doc, "")
    return doc


def _check_text(node: Any, path: str) -> None:
    """InvalidRequest naming the first string (or key) under `node` that is not Unicode."""
    if isinstance(node, str):
        try:
            node.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequest(
                f"{path or 'the request body'}: not valid Unicode text (a lone surrogate "
                f"\\u{ord(node[exc.start]):04x} at character {exc.start})") from None
    elif isinstance(node, dict):
        for k, v in node.items():
            _check_text(k, f"{path} (a key)" if path else "a key")
            _check_text(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_text(v, f"{path}[{i}]")


# -- reading a request ---------------------------------------------------------------------------


def _type_name(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null",
            int: "integer", float: "number"}.get(type(v), type(v).__name__)


def _num(node: Mapping[str, Any], key: str, path: str, *, integer: bool = False) -> Any:
    v = node.get(key)
    if v is None:
        return None
    ok = isinstance(v, int) if integer else isinstance(v, int | float)
    if not ok or isinstance(v, bool) or (isinstance(v, float) and not math.isfinite(v)):
        raise InvalidRequest(f"{path}{key}: must be {'an integer' if integer else 'a number'}, "
                             f"got {_type_name(v)}")
    return v


def _get(node: Mapping[str, Any], key: str, path: str, kind: type, what: str) -> Any:
    v = node.get(key)
    if v is not None and not isinstance(v, kind):  # kind: str, bool, list (never int)
        raise InvalidRequest(f"{path}{key}: must be {what}, got {_type_name(v)}")
    return v


def _strings(node: Mapping[str, Any], key: str, path: str) -> frozenset[str]:
    v = _get(node, key, path, list, "an array of strings") or []
    for i, s in enumerate(v):
        if not isinstance(s, str):
            raise InvalidRequest(f"{path}{key}[{i}]: must be a string, got {_type_name(s)}")
    return frozenset(v)


def _object(v: Any, path: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise InvalidRequest(f"{path}: must be an object, got {_type_name(v)}")
    return v


def _unknown(node: Mapping[str, Any], allowed: Collection[str], path: str) -> None:
    for key in node:
        if key not in allowed:
            raise InvalidRequest(f"{path}{key}: unknown field (allowed: {', '.join(sorted(allowed))})")


def _content(v: Any, path: str) -> str:
    if v is None or isinstance(v, str):
        return v or ""
    if not isinstance(v, list):
        raise InvalidRequest(f"{path}: must be a string or an array of text parts, "
                             f"got {_type_name(v)}")
    parts = []
    for i, part in enumerate(v):
        p = _object(part, f"{path}[{i}]")
        if p.get("type") != "text" or not isinstance(p.get("text"), str):
            raise InvalidRequest(f"{path}[{i}]: only text parts ({{\"type\": \"text\", "
                                 f"\"text\": \"...\"}}) are supported")
        parts.append(p["text"])
    return "".join(parts)


def _messages(v: Any) -> tuple[Message, ...]:
    if not isinstance(v, list) or not v:
        raise InvalidRequest("messages: must be a non-empty array of messages")
    out = []
    for i, m in enumerate(v):
        node = _object(m, f"messages[{i}]")
        role = node.get("role")
        if not isinstance(role, str):
            raise InvalidRequest(f"messages[{i}].role: must be a string, got {_type_name(role)}")
        out.append(Message(role, _content(node.get("content"), f"messages[{i}].content")))
    return tuple(out)


def _constraints(v: Any) -> Constraints:
    if v is None:
        return NO_CONSTRAINTS
    p = "routecore.constraints."
    c = _object(v, p[:-1])
    _unknown(c, _CONSTRAINTS, p)
    return Constraints(
        max_cost_usd=_num(c, "max_cost_usd", p), max_latency_ms=_num(c, "max_latency_ms", p),
        min_quality=_num(c, "min_quality", p),
        required_capabilities=_strings(c, "required_capabilities", p),
        allow_models=_strings(c, "allow_models", p), deny_models=_strings(c, "deny_models", p),
        max_output_tokens=_num(c, "max_output_tokens", p, integer=True))


def _weights(v: Any) -> Weights | None:
    if v is None:
        return None
    p = "routecore.weights."
    w = _object(v, p[:-1])
    _unknown(w, ("quality", "cost", "latency"), p)
    d = Weights()
    vals = {k: _num(w, k, p) for k in ("quality", "cost", "latency")}
    return Weights(**{k: getattr(d, k) if x is None else float(x) for k, x in vals.items()})


def _compress(v: Any) -> CompressSpec | None:
    if v is None:
        return None
    p = "routecore.compress."
    c = _object(v, p[:-1])
    _unknown(c, ("target_ratio", "max_input_tokens"), p)
    ratio = _num(c, "target_ratio", p)
    spec = CompressSpec(None if ratio is None else float(ratio),
                        _num(c, "max_input_tokens", p, integer=True))
    check_spec(spec, p[:-1])
    return spec


def _pick_model(model: Any, known: Collection[str], auto: Collection[str]) -> str:
    """The model to pin ("" routes); an unknown name is UnknownModel (HTTP 404)."""
    if not isinstance(model, str) or not model:
        raise InvalidRequest(f"model: must be a non-empty string, got {_type_name(model)}")
    if model in auto:
        return ""
    if model not in known:
        names = [*auto, *known]
        raise UnknownModel(f"model: unknown model {model[:100]!r} (known: {', '.join(names)})")
    return model


def _cache_options(rc: Mapping[str, Any], hdrs: Mapping[str, str]) -> tuple[str, int]:
    """The cache policy and max age: from the body's `routecore`, else the headers."""
    policy = _get(rc, "cache", "routecore.", str, "a string")
    if policy is None:
        policy = hdrs.get(CACHE_HEADER, "")
        check_request(policy, 0, prefix="header x-routecore-")
    else:
        check_request(policy, 0, prefix="routecore.")
    age = _num(rc, "cache_max_age_s", "routecore.", integer=True)
    if age is not None:
        check_request("", age, prefix="routecore.")
    elif MAX_AGE_HEADER in hdrs:
        raw = hdrs[MAX_AGE_HEADER].strip()
        if not raw.isascii() or not raw.isdigit() or len(raw) > 12 or int(raw) > MAX_AGE_S:
            raise InvalidRequest(f"header {MAX_AGE_HEADER}: must be an integer number of "
                                 f"seconds in [0, {MAX_AGE_S}], got {echo(raw, 40)}")
        age = int(raw)
    return policy, age or 0


def chat_request(body: Any, request_id: str, known: Collection[str],
                 auto: Collection[str], tenant: str = "",
                 hdrs: Mapping[str, str] | None = None) -> ChatCall:
    """The domain request for a chat-completions body (and the x-routecore-cache headers);
    InvalidRequest names the bad field."""
    b = _object(body, "the request body")
    for key in b:
        if key in _UNSUPPORTED and b[key] not in (None, False):
            raise InvalidRequest(f"{key}: not supported by routecore")
        if key not in _FIELDS and key not in _IGNORED and key not in _UNSUPPORTED:
            raise InvalidRequest(f"{key}: unknown field")
    pin = _pick_model(b.get("model"), known, auto)
    if b.get("n") not in (None, 1):
        raise InvalidRequest("n: only 1 choice per request is supported")
    stream = bool(_get(b, "stream", "", bool, "a boolean"))
    opts = _object(b.get("stream_options") or {}, "stream_options")
    include_usage = bool(_get(opts, "include_usage", "stream_options.", bool, "a boolean"))
    fmt = _object(b.get("response_format") or {"type": "text"}, "response_format")
    if fmt.get("type") not in ("text", "json_object"):
        raise InvalidRequest(f"response_format.type: must be 'text' or 'json_object', "
                             f"got {str(fmt.get('type'))[:50]!r}")
    max_out = _num(b, "max_completion_tokens", "", integer=True)
    if max_out is None:
        max_out = _num(b, "max_tokens", "", integer=True)
    if max_out is not None and max_out < 1:
        raise InvalidRequest(f"max_tokens: must be >= 1, got {max_out}")
    temperature = _num(b, "temperature", "")
    user = _get(b, "user", "", str, "a string") or ""
    rc = _object(b.get("routecore") or {}, "routecore")
    _unknown(rc, _ROUTECORE, "routecore.")
    timeout = _num(rc, "timeout_s", "routecore.")
    if timeout is not None and timeout <= 0:
        raise InvalidRequest(f"routecore.timeout_s: must be > 0, got {timeout}")
    ensemble = _num(rc, "ensemble_size", "routecore.", integer=True)
    threshold = _num(rc, "cascade_threshold", "routecore.")
    wtp = _num(rc, "willingness_to_pay", "routecore.")
    cache, max_age = _cache_options(rc, hdrs or {})
    route = RouteRequest(
        messages=_messages(b.get("messages")), user=user,
        tenant=tenant or _get(rc, "tenant", "routecore.", str, "a string") or "",
        strategy=_get(rc, "strategy", "routecore.", str, "a string") or "",
        constraints=_constraints(rc.get("constraints")), request_id=request_id,
        willingness_to_pay=None if wtp is None else float(wtp),
        weights=_weights(rc.get("weights")), model=pin, compress=_compress(rc.get("compress")))
    req = CompletionRequest(
        route=route, max_output_tokens=max_out or 0,
        temperature=0.0 if temperature is None else float(temperature),
        cascade=bool(_get(rc, "cascade", "routecore.", bool, "a boolean")),
        cascade_threshold=0.0 if threshold is None else float(threshold),
        ensemble_size=ensemble or 0, json_mode=fmt.get("type") == "json_object",
        cache=cache, cache_max_age_s=max_age)
    return ChatCall(req, stream, include_usage, None if timeout is None else float(timeout))


# -- writing answers -----------------------------------------------------------------------------


def _usage(u: Usage | None) -> dict[str, int]:
    n_in, n_out = (u.input_tokens, u.output_tokens) if u is not None else (0, 0)
    return {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}


def _finish(reason: str) -> str:
    return reason if reason in _FINISH else "stop"


def _attempts(attempts: Iterable[Attempt]) -> list[dict[str, Any]]:
    return [{"model": a.model, "provider": a.provider, "deployment": a.deployment,
             "error": a.error, "duration_ms": round(a.duration_ms, 3), "retry": a.retry}
            for a in attempts]


def _steps(steps: Iterable[CascadeStep]) -> list[dict[str, Any]]:
    return [{"model": s.model, "confidence": s.confidence, "escalated": s.escalated,
             "reason": s.reason, "cost_usd": s.cost_usd} for s in steps]


def decision_json(d: Decision | None) -> dict[str, Any] | None:
    """The decision without per-candidate rows (as gRPC Complete responses carry it)."""
    if d is None:
        return None
    return {"model": d.model, "provider": d.provider, "model_version": d.model_version,
            "fallbacks": list(d.fallbacks), "strategy": d.strategy, "category": d.category,
            "category_confidence": d.category_confidence, "complexity": d.complexity,
            "estimated_cost_usd": d.estimated_cost_usd,
            "estimated_latency_ms": d.estimated_latency_ms,
            "predicted_quality": d.predicted_quality, "reason": d.reason,
            "router_version": d.router_version, "variant": d.variant,
            "decision_micros": d.decision_micros, "deployment": d.deployment,
            "deployment_order": list(d.deployment_order), "input_tokens": d.input_tokens,
            "compression": _compression(d),
            **({} if d.classifier is None else {"classifier": _classifier(d.classifier)})}


def _classifier(c: ClassifierReport) -> dict[str, Any]:
    """classifier.mode llm/cascade: where the category came from (as gRPC's classifier_*)."""
    return {"source": c.source, "model": c.model, "cost_usd": c.cost_usd,
            "latency_ms": c.latency_ms}


def _compression(d: Decision) -> dict[str, int] | None:
    c = d.compression
    if c is None:
        return None
    return {"input_tokens_before": c.input_tokens_before, "tokens_saved": c.tokens_saved,
            "chunks": c.chunks, "chunks_dropped": c.chunks_dropped}


def _header(value: str) -> str:
    """A header-safe value: printable ASCII, one line, capped."""
    return value.encode("ascii", "replace").decode().replace("\r", " ").replace(
        "\n", " ")[:MAX_HEADER_CHARS]


def headers(request_id: str, model: str, provider: str, decision: Decision | None,
            cost_usd: float | None = None, cache_hit: str = "") -> dict[str, str]:
    """The x-routecore-* headers (cost only when known before the body: not for streams)."""
    h = {"x-routecore-request-id": _header(request_id), "x-routecore-model": _header(model),
         "x-routecore-provider": _header(provider)}
    if decision is not None:
        h["x-routecore-strategy"] = decision.strategy
        h["x-routecore-category"] = decision.category
        h["x-routecore-decision"] = _header(decision.reason)
    if cost_usd is not None:
        h["x-routecore-cost-usd"] = f"{cost_usd:.8f}"
    h[CACHE_HEADER] = client_hit(cache_hit)
    return h



def completion_json(r: CompletionResult, created: int) -> dict[str, Any]:
    """A `chat.completion` object, with routecore's details under `routecore`."""
    return {
        "id": f"chatcmpl-{r.request_id}", "object": "chat.completion", "created": created,
        "model": r.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": r.text},
                     "finish_reason": _finish(r.finish_reason), "logprobs": None}],
        "usage": _usage(r.usage),
        "routecore": {"request_id": r.request_id, "provider": r.provider,
                      "deployment": r.deployment, "cost_usd": r.cost_usd,
                      "latency_ms": round(r.latency_ms, 3), "attempts": _attempts(r.attempts),
                      "cascade_steps": _steps(r.cascade_steps),
                      "decision": decision_json(r.decision),
                      "cache_hit": client_hit(r.cache_hit), "saved_usd": r.saved_usd}}


class ChunkWriter:
    """SSE `chat.completion.chunk` events for one stream. The JSON around a delta is
    encoded once per stream, so each token costs one small `json.dumps`."""

    DONE = b"data: [DONE]\n\n"

    def __init__(self, request_id: str, model: str, created: int) -> None:
        self._rid = request_id
        self._head: dict[str, Any] = {"id": f"chatcmpl-{request_id}", "object": "chat.completion.chunk",
                      "created": created, "model": model}
        head = json.dumps(self._head)[:-1]
        self._pre = f'data: {head}, "choices": [{{"index": 0, "delta": {{"content": '.encode()
        self._post = b'}, "finish_reason": null}]}\n\n'

    def _event(self, doc: Mapping[str, Any]) -> bytes:
        return b"data: " + json.dumps({**self._head, **doc}).encode() + b"\n\n"

    def first(self, text: str) -> bytes:
        return self._event({"choices": [{"index": 0, "delta": {"role": "assistant",
                                                                "content": text},
                                         "finish_reason": None}]})

    def delta(self, text: str) -> bytes:
        return self._pre + json.dumps(text).encode() + self._post

    def finish(self, reason: str, cost_usd: float, attempts: Iterable[Attempt],
               decision: Decision | None, cache_hit: str = "", saved_usd: float = 0.0) -> bytes:
        """The last choice chunk; routecore's cost and decision ride along under `routecore`."""
        return self._event({
            "choices": [{"index": 0, "delta": {}, "finish_reason": _finish(reason)}],
            "routecore": {"request_id": self._rid, "cost_usd": cost_usd,
                          "attempts": _attempts(attempts), "decision": decision_json(decision),
                          "cache_hit": client_hit(cache_hit), "saved_usd": saved_usd}})

    def usage(self, usage: Usage | None) -> bytes:
        """The `stream_options.include_usage` chunk: no choices, the whole stream's usage."""
        return self._event({"choices": [], "usage": _usage(usage)})

    @staticmethod
    def error(exc: BaseException) -> bytes:
        """An error after the stream started: the SDKs raise it from the iterator."""
        _, doc = error_json(exc)
        return b"data: " + json.dumps(doc).encode() + b"\n\n"


def model_json(name: str, spec: ModelSpec | None) -> dict[str, Any]:
    """One `GET /v1/models` entry; routecore's price and context ride under `routecore`."""
    if spec is None:  # a name that routes
        return {"id": name, "object": "model", "created": 0, "owned_by": "routecore",
                "routecore": {"routes": True}}
    return {"id": name, "object": "model", "created": 0, "owned_by": spec.provider,
            "routecore": {"routes": False, "model_id": spec.model_id, "version": spec.version,
                          "price_per_mtok": {"input": spec.price.input,
                                             "output": spec.price.output},
                          "context_window": spec.context_window,
                          "capabilities": sorted(spec.capabilities),
                          "fallbacks": list(spec.fallbacks)}}


# -- errors: the one place a routecore error becomes an HTTP status ------------------------------

# By the taxonomy's status name; classes needing another HTTP status are listed first.
_BY_STATUS = {
    "INVALID_ARGUMENT": (400, "invalid_request_error", None),
    "FAILED_PRECONDITION": (400, "invalid_request_error", "no_model_available"),
    "NOT_FOUND": (404, "not_found_error", "not_found"),
    "UNAUTHENTICATED": (401, "authentication_error", "invalid_api_key"),
    "PERMISSION_DENIED": (403, "permission_error", "permission_denied"),
    "RESOURCE_EXHAUSTED": (429, "rate_limit_error", "rate_limit_exceeded"),
    "UNAVAILABLE": (503, "server_error", "upstream_unavailable"),
    "DEADLINE_EXCEEDED": (504, "timeout_error", "timeout"),
}
_INTERNAL = (500, "server_error", "internal_error")
_BY_CLASS: list[tuple[type[BaseException], tuple[int, str, str | None]]] = [
    (UnknownModel, (404, "invalid_request_error", "model_not_found")),
    (BudgetExceeded, (402, "insufficient_quota", "budget_exceeded")),
    (RequestTooLarge, (413, "invalid_request_error", "request_too_large")),
    (MethodNotAllowed, (405, "invalid_request_error", "method_not_allowed")),
]
_PARAM = re.compile(r"^(?:header )?([A-Za-z_][\w.\[\]-]*): ")  # a header names itself


def http_error(exc: BaseException) -> tuple[int, str, str | None]:
    """(HTTP status, OpenAI error type, code) for an exception."""
    for cls, out in _BY_CLASS:
        if isinstance(exc, cls):
            return out
    if isinstance(exc, RoutecoreError):
        return _BY_STATUS.get(exc.status, _INTERNAL)
    return _INTERNAL


def error_json(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """(status, OpenAI error body). Only routecore errors show their message; anything
    else is a bug, and the caller gets a pointer to the server log, not internals."""
    status, etype, code = http_error(exc)
    if isinstance(exc, RoutecoreError):
        message = cap_message(exc.message)
    else:
        message = f"internal error ({type(exc).__name__}); see the server log"
    m = _PARAM.match(message)
    return status, {"error": {"message": message, "type": etype,
                              "param": m.group(1) if m else None, "code": code}}

