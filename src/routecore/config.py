"""Configuration: loaded once, validated with messages naming the exact field, frozen.

`load_config(None)` reads the packaged `defaults.yaml`; `load_config(path)`
reads a file. Every problem is collected (not just the first) and raised as one
`ConfigError` whose lines look like `models.gpt-4o.price.input: must be >= 0`.
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from routecore.domain import CAPABILITIES, STRATEGIES, Weights
from routecore.errors import ConfigError

ENDPOINT_KINDS = ("simulated", "openai", "anthropic")
_YAML_TEXT_NUMBER = re.compile(r"^[-+]?[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+$")
LOCAL_CLASSIFIER_MODES = ("rule", "embedding", "combined", "trained")
# llm: a small registry model classifies every request; cascade: only when the local
# classifier's confidence is low (calling/llm_classifier.py). Both keep a local one.
CLASSIFIER_MODES = (*LOCAL_CLASSIFIER_MODES, "llm", "cascade")


@dataclass(frozen=True, slots=True)
class PriceTier:
    """A long-context rate: a request with more than `above_input_tokens` input tokens
    pays these rates on all its tokens (as Gemini and Claude bill past 200K)."""

    above_input_tokens: int
    input: float
    output: float


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens. `tiers`: long-context rates, by rising threshold (the highest
    one a request is past applies). `batch_discount`: the fraction a vendor's batch API
    takes off every rate."""

    input: float  # USD per 1M input tokens
    output: float  # USD per 1M output tokens
    batch_discount: float = 0.0
    tiers: tuple[PriceTier, ...] = ()

    def rates(self, input_tokens: int, batch: bool = False) -> tuple[float, float]:
        """(input, output) USD per 1M tokens for a request with `input_tokens`."""
        i, o = self.input, self.output
        for t in self.tiers:
            if input_tokens > t.above_input_tokens:
                i, o = t.input, t.output
        if batch:
            keep = 1.0 - self.batch_discount
            return i * keep, o * keep
        return i, o

    def cost(self, input_tokens: int, output_tokens: int, batch: bool = False) -> float:
        """USD for one request (tier by its input tokens; batch rates if `batch`)."""
        i, o = self.rates(input_tokens, batch)
        return (input_tokens * i + output_tokens * o) / 1e6


def cheapest(prices: Iterable[Price]) -> Price:
    """The lowest of `prices` for a typical request (1,000 input, 500 output tokens)."""
    return min(prices, key=lambda p: p.cost(1000, 500))


@dataclass(frozen=True, slots=True)
class Latency:
    p50_ms: float  # time to a complete typical answer
    p95_ms: float
    tokens_per_s: float


@dataclass(frozen=True, slots=True)
class RateLimits:
    rpm: int  # 0: unlimited
    tpm: int


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a model is sold. Unset price/latency/provider: the model's (so a
    versioned model's rollout prices every deployment at the served version's price)."""

    endpoint: str
    model_id: str
    weight: float = 1.0
    name: str = ""  # unique within the model; default the endpoint's name
    provider: str = ""  # who bills it; default the model's provider
    price: Price | None = None
    latency: Latency | None = None
    rate_limits: RateLimits = RateLimits(0, 0)  # this deployment's own RPM/TPM (0: none)

    @property
    def key(self) -> str:
        """The breaker, load-stats and rate-limit key."""
        return f"{self.endpoint}/{self.model_id}"


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One upstream snapshot of a model: what is called and what it costs."""

    name: str  # e.g. "2024-08-06"
    model_id: str
    price: Price


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    provider: str
    model_id: str  # what is called upstream: the pinned version's model_id when versioned
    version: str  # the pinned version's name; the model_id when the model has no versions
    price: Price
    context_window: int
    max_output_tokens: int
    capabilities: frozenset[str]
    quality: Mapping[str, float]
    latency: Latency
    rate_limits: RateLimits
    fallbacks: tuple[str, ...]
    deployments: tuple[Deployment, ...]
    sim: Mapping[str, Any]
    versions: Mapping[str, ModelVersion] = field(default_factory=dict)  # empty: unversioned

    def quality_for(self, category: str) -> float:
        return self.quality.get(category, self.quality["default"])

    def list_price(self) -> Price:
        """What the model-level policy prices it at: its cheapest seller's price (deployments
        without their own price sell at the model's), judged on a 1,000-in/500-out request."""
        if not any(d.price is not None for d in self.deployments):
            return self.price
        return cheapest(d.price or self.price for d in self.deployments)


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    kind: str
    base_url: str
    api_key_env: str
    timeout_s: float
    max_connections: int
    options: Mapping[str, Any] = field(default_factory=dict)
    allow_insecure: bool = False  # an API key may travel over plain http to a remote host


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    description: str
    exemplars: tuple[str, ...]
    keywords: tuple[str, ...]
    patterns: tuple[str, ...]
    complexity: float  # base complexity of the category


@dataclass(frozen=True, slots=True)
class ComplexityTier:
    max_complexity: float
    models: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LearnedConfig:
    artifact: str  # "" when no learned router is configured
    willingness_to_pay: float


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    default_strategy: str
    default_output_tokens: int
    weights: Weights
    complexity_tiers: tuple[ComplexityTier, ...]
    domains: Mapping[str, tuple[str, ...]]
    max_fallbacks: int
    learned: LearnedConfig
    auto_models: tuple[str, ...] = ("auto",)  # model names that mean "route" (HTTP front door)


@dataclass(frozen=True, slots=True)
class LlmClassifierConfig:
    """`classifier.llm`: the model asked to classify, and how far it is trusted."""

    model: str  # a registry model
    local: str = "trained"  # the local classifier: asked first (cascade) and the fallback
    threshold: float = 0.6  # cascade: ask the LLM when the local confidence is below this
    timeout_ms: float = 1500.0  # the whole LLM classification, retries included
    cache_size: int = 10_000  # answers kept per process (LRU), keyed by tenant + prompt hash
    cache_ttl_s: float = 3600.0
    max_prompt_chars: int = 2000  # of the prompt sent (its head and tail)
    max_output_tokens: int = 32


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    mode: str
    embedding_weight: float
    feature_dim: int
    llm: LlmClassifierConfig | None = None  # set exactly when mode is llm or cascade

    @property
    def local_mode(self) -> str:
        """The local classifier's mode (rule, embedding, combined or trained)."""
        return self.llm.local if self.llm is not None else self.mode


@dataclass(frozen=True, slots=True)
class TlsConfig:
    cert: str  # PEM certificate chain (paths resolved against the config file's directory)
    key: str  # PEM private key
    client_ca: str = ""  # PEM CA bundle: when set, clients must present a certificate (mTLS)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str
    port: int
    max_message_bytes: int
    grace_s: float
    http_port: int | None = None  # the OpenAI-compatible HTTP front door; None: off
    # gRPC reflection; None: on, except when `auth` is configured.
    reflection: bool | None = None
    tls: TlsConfig | None = None


@dataclass(frozen=True, slots=True)
class Config:
    router_version: str
    classifier: ClassifierConfig
    categories: Mapping[str, Category]
    routing: RoutingConfig
    models: Mapping[str, ModelSpec]
    endpoints: Mapping[str, Endpoint]
    server: ServerConfig
    # Sections owned by later modules (cascade, feedback, ab, ...), validated there.
    extra: Mapping[str, Any]
    source: str


class _Reader:
    """Reads a YAML tree and collects every problem with its dotted path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, msg: str) -> None:
        self.problems.append(f"{path}: {msg}")

    def mapping(self, node: Any, path: str, required: bool = True) -> dict[str, Any]:
        if node is None and not required:
            return {}
        if not isinstance(node, dict):
            self.fail(path, "must be a mapping" if node is not None else "is required")
            return {}
        return node

    def get(self, node: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...],
            default: Any = ..., ) -> Any:
        full = f"{path}.{key}" if path else key
        if key not in node or node[key] is None:
            if default is ...:
                self.fail(full, "is required")
                return None
            return default
        value = node[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, bool) and kind in (int, float):
            self.fail(full, f"must be a {kind.__name__}, got a bool")
            return None
        if not isinstance(value, kind):
            name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            hint = ""
            if kind in (int, float) and isinstance(value, str) and _YAML_TEXT_NUMBER.match(value):
                # PyYAML (YAML 1.1) reads 1e3 or 1E-6 as a string: the value looks right
                hint = f" {value!r} (YAML reads an exponent without a dot and sign as text: write 1.0e+3)"
            self.fail(full, f"must be a {name}, got {type(value).__name__}{hint}")
            return None
        return value

    def number(self, node: dict[str, Any], key: str, path: str, *, lo: float | None = None,
               hi: float | None = None, default: Any = ..., integer: bool = False) -> Any:
        value = self.get(node, key, path, int if integer else float, default)
        if value is None:
            return None
        full = f"{path}.{key}" if path else key
        if not math.isfinite(value):
            self.fail(full, "must be a finite number")
            return None
        if lo is not None and value < lo:
            self.fail(full, f"must be >= {lo:g}")
        if hi is not None and value > hi:
            self.fail(full, f"must be <= {hi:g}")
        return value

    def strings(self, node: dict[str, Any], key: str, path: str,
                default: Any = ()) -> tuple[str, ...]:
        value = self.get(node, key, path, list, list(default) if default is not ... else ...)
        if value is None:
            return ()
        full = f"{path}.{key}"
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                self.fail(f"{full}[{i}]", "must be a non-empty string")
            else:
                out.append(item)
        return tuple(out)

    def unknown(self, node: dict[str, Any], path: str, allowed: set[str]) -> None:
        for key in node:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.fail(where, f"unknown field (allowed: {', '.join(sorted(allowed))})")


# The top-level sections. Each is parsed here or by the module that owns it (named
# beside it); a new section is added by one line here, in the same change that makes
# it do what it says. Anything else is an error naming it.
SECTIONS = frozenset({
    "router_version", "classifier", "categories", "routing", "models", "endpoints", "server",
    "cascade",     # calling/cascade.py
    "ensemble",    # calling/ensemble.py
    "resilience",  # calling/resilience.py
    "feedback",    # learned/feedback.py
    "ab",          # routing/ab.py
    "state",       # state/backend.py
    "audit",       # observe/settings.py
    "metrics",     # observe/settings.py
    "telemetry",   # observe/telemetry.py
    "auth",        # server/identity.py
    "budgets",     # state/budget.py
    "rollout",     # calling/rollout.py
    "cache",       # calling/cache.py
    "shadow",      # calling/shadow.py
    "load",        # routing/load.py
    "alerts",      # observe/regression.py
    "compress",    # routing/compress.py
})
# Sections people expect but nothing implements yet: rejected by name, never ignored.
NOT_SUPPORTED: dict[str, str] = {}
_MODEL = {"provider", "model_id", "version", "versions", "pinned", "price", "context_window",
          "max_output_tokens", "capabilities", "quality", "latency", "rate_limits", "fallbacks",
          "deployments", "sim"}


def _model(r: _Reader, name: str, node: Any) -> ModelSpec | None:
    p = f"models.{name}"
    m = r.mapping(node, p)
    r.unknown(m, p, _MODEL)
    versions, pinned = _versions(r, m, p)
    model_id = pinned.model_id if pinned else r.get(m, "model_id", p, str, name)
    deployments = _deployments(r, m, p, model_id)
    # Every deployment priced: the model's price may be left out (its cheapest seller's).
    listed = m.get("deployments")
    sold = isinstance(listed, list) and bool(listed) and all(
        isinstance(d, dict) and "price" in d for d in listed)
    priced = [d.price for d in deployments if d.price is not None]
    price = r.mapping(m.get("price"), f"{p}.price",
                      required="versions" not in m and not sold)
    lat = r.mapping(m.get("latency"), f"{p}.latency")
    rl = r.mapping(m.get("rate_limits"), f"{p}.rate_limits", required=False)
    quality_node = r.mapping(m.get("quality"), f"{p}.quality")
    quality: dict[str, float] = {}
    for cat in quality_node:
        q = r.number(quality_node, cat, f"{p}.quality", lo=0.0, hi=1.0)
        if q is not None:
            quality[str(cat)] = q
    if quality_node and "default" not in quality_node:
        r.fail(f"{p}.quality.default", "is required")
    caps = r.strings(m, "capabilities", p)
    for i, c in enumerate(caps):
        if c not in CAPABILITIES:
            r.fail(f"{p}.capabilities[{i}]", f"unknown capability {c!r} (known: {', '.join(CAPABILITIES)})")
    sim = r.mapping(m.get("sim"), f"{p}.sim", required=False)
    values = dict(
        provider=r.get(m, "provider", p, str),
        price=pinned.price if pinned else None if "versions" in m else
        _price(r, price, f"{p}.price") if price or not sold else
        cheapest(priced) if priced else None,
        ctx=r.number(m, "context_window", p, lo=1, integer=True),
        max_out=r.number(m, "max_output_tokens", p, lo=1, integer=True, default=4096),
        p50=r.number(lat, "p50_ms", f"{p}.latency", lo=0.0),
        p95=r.number(lat, "p95_ms", f"{p}.latency", lo=0.0),
        tps=r.number(lat, "tokens_per_s", f"{p}.latency", lo=0.001, default=50.0),
        rpm=r.number(rl, "rpm", f"{p}.rate_limits", lo=0, integer=True, default=0),
        tpm=r.number(rl, "tpm", f"{p}.rate_limits", lo=0, integer=True, default=0),
    )
    fallbacks = r.strings(m, "fallbacks", p)
    if any(v is None for v in values.values()) or model_id is None:
        return None
    if values["p95"] < values["p50"]:
        r.fail(f"{p}.latency.p95_ms", "must be >= latency.p50_ms")
    return ModelSpec(
        name=name, provider=values["provider"], model_id=model_id,
        version=pinned.name if pinned else model_id, versions=versions,
        price=values["price"], context_window=values["ctx"],
        max_output_tokens=values["max_out"], capabilities=frozenset(caps), quality=quality,
        latency=Latency(values["p50"], values["p95"], values["tps"]),
        rate_limits=RateLimits(values["rpm"], values["tpm"]), fallbacks=fallbacks,
        deployments=tuple(deployments), sim=dict(sim),
    )


_DEPLOYMENT = {"name", "endpoint", "model_id", "weight", "provider", "price", "latency",
               "rate_limits"}


def _deployments(r: _Reader, m: dict[str, Any], p: str, model_id: str | None,
                 ) -> tuple[Deployment, ...]:
    """A model's deployments: where it is sold, each at its own price, speed and limits
    (routing/arbitrage.py picks among them)."""
    out: list[Deployment] = []
    for i, d in enumerate(r.get(m, "deployments", p, list, []) or []):
        dp = f"{p}.deployments[{i}]"
        dn = r.mapping(d, dp)
        r.unknown(dn, dp, _DEPLOYMENT)
        if "versions" in m:
            for own in ("model_id", "price"):
                if own in dn:
                    r.fail(f"{dp}.{own}", "comes from the pinned version when the model has "
                                          "versions")
        price = None
        if "price" in dn and "versions" not in m:
            price = _price(r, r.mapping(dn["price"], f"{dp}.price"), f"{dp}.price")
        latency = None
        if "latency" in dn:
            ln = r.mapping(dn["latency"], f"{dp}.latency")
            r.unknown(ln, f"{dp}.latency", {"p50_ms", "p95_ms", "tokens_per_s"})
            p50 = r.number(ln, "p50_ms", f"{dp}.latency", lo=0.0)
            p95 = r.number(ln, "p95_ms", f"{dp}.latency", lo=0.0)
            tps = r.number(ln, "tokens_per_s", f"{dp}.latency", lo=0.001, default=50.0)
            if p50 is not None and p95 is not None and p95 < p50:
                r.fail(f"{dp}.latency.p95_ms", "must be >= latency.p50_ms")
            elif None not in (p50, p95, tps):
                latency = Latency(p50, p95, tps)
        rl = r.mapping(dn.get("rate_limits"), f"{dp}.rate_limits", required=False)
        r.unknown(rl, f"{dp}.rate_limits", {"rpm", "tpm"})
        ep = r.get(dn, "endpoint", dp, str) or ""
        name = r.get(dn, "name", dp, str, "") or ""
        out.append(Deployment(
            endpoint=ep, model_id=r.get(dn, "model_id", dp, str, model_id) or "",
            weight=r.number(dn, "weight", dp, lo=0.0, default=1.0) or 0.0,
            name=name, provider=r.get(dn, "provider", dp, str, "") or "", price=price,
            latency=latency,
            rate_limits=RateLimits(
                r.number(rl, "rpm", f"{dp}.rate_limits", lo=0, integer=True, default=0) or 0,
                r.number(rl, "tpm", f"{dp}.rate_limits", lo=0, integer=True, default=0) or 0)))
    # Unnamed: the endpoint's name, or endpoint/model_id when the endpoint serves several.
    endpoints = [d.endpoint for d in out]
    out = [d if d.name else replace(d, name=d.endpoint if endpoints.count(d.endpoint) == 1
                                    else d.key) for d in out]
    seen: dict[str, int] = {}
    keys: dict[str, int] = {}
    for i, d in enumerate(out):
        if d.name in seen:
            r.fail(f"{p}.deployments[{i}].name",
                   f"{d.name!r} is already deployments[{seen[d.name]}]'s name")
        elif d.key in keys:
            r.fail(f"{p}.deployments[{i}].model_id",
                   f"endpoint {d.endpoint!r} already serves {d.model_id!r} as "
                   f"deployments[{keys[d.key]}] (one breaker and limit per pair)")
        seen.setdefault(d.name, i)
        keys.setdefault(d.key, i)
    return tuple(out)


def _versions(r: _Reader, m: dict[str, Any],
              p: str) -> tuple[dict[str, ModelVersion], ModelVersion | None]:
    """`versions` + `pinned`: the pinned version's model_id and price are what is called
    and charged, so the model-level `model_id`/`version` would contradict it."""
    if "version" in m:
        r.fail(f"{p}.version", "is not what is called upstream; set model_id to the snapshot, "
                               "or list versions and pin one (versions: {...}, pinned: ...)")
    nodes = r.mapping(m.get("versions"), f"{p}.versions", required=False)
    pin_raw = r.get(m, "pinned", p, (str, datetime.date), None)  # YAML reads 2024-08-06 as a date
    if not nodes:
        if "versions" in m and isinstance(m["versions"], dict):
            r.fail(f"{p}.versions", "must list at least one version")
        if pin_raw is not None:
            r.fail(f"{p}.pinned", "needs versions to pin one of")
        return {}, None
    # The model's own price, when set, is every version's default.
    base = _price(r, r.mapping(m["price"], f"{p}.price"), f"{p}.price") if "price" in m else None
    out: dict[str, ModelVersion] = {}
    for key, node in nodes.items():
        vname = str(key)  # YAML reads 2024-08-06 as a date
        vp = f"{p}.versions.{vname}"
        vn = r.mapping(node, vp)
        r.unknown(vn, vp, {"model_id", "price"})
        vid = r.get(vn, "model_id", vp, str)
        if "price" in vn:
            price = _price(r, r.mapping(vn["price"], f"{vp}.price"), f"{vp}.price")
        elif "price" in m:
            price = base
        else:
            r.fail(f"{vp}.price", "is required (or set the model's price)")
            continue
        if vid and price is not None:
            out[vname] = ModelVersion(vname, vid, price)
    if "model_id" in m:
        r.fail(f"{p}.model_id", "comes from the pinned version when the model has versions")
    if pin_raw is None:
        r.fail(f"{p}.pinned", f"is required with versions (one of: {', '.join(map(str, nodes))})")
        return out, None
    pin = str(pin_raw)
    if pin not in {str(k) for k in nodes}:
        r.fail(f"{p}.pinned", f"must name a version (one of: {', '.join(map(str, nodes))}), "
                              f"got {pin!r}")
    return out, out.get(pin)


_TIER = {"above_input_tokens", "input", "output"}


def _price(r: _Reader, node: dict[str, Any], p: str) -> Price | None:
    r.unknown(node, p, {"input", "output", "batch_discount", "long_context", "tiers"})
    base_in = r.number(node, "input", p, lo=0.0)
    base_out = r.number(node, "output", p, lo=0.0)
    discount = r.number(node, "batch_discount", p, lo=0.0, hi=0.99, default=0.0)
    # `long_context` is one tier; `tiers` a list of them by rising threshold.
    long = r.mapping(node.get("long_context"), f"{p}.long_context", required=False)
    r.unknown(long, f"{p}.long_context", _TIER)
    listed = r.get(node, "tiers", p, list, []) or []
    nodes: list[tuple[str, dict[str, Any]]] = [(f"{p}.long_context", long)] if long else []
    if nodes and listed:
        r.fail(f"{p}.tiers", "give long_context (one tier) or tiers, not both")
    nodes.extend((f"{p}.tiers[{i}]", r.mapping(t, f"{p}.tiers[{i}]"))
                 for i, t in enumerate(listed))
    tiers: list[PriceTier] = []
    ok = True
    for tp, t in nodes:
        if t is not long:
            r.unknown(t, tp, _TIER)
        above = r.number(t, "above_input_tokens", tp, lo=1, integer=True)
        t_in = r.number(t, "input", tp, lo=0.0)
        t_out = r.number(t, "output", tp, lo=0.0)
        if None in (above, t_in, t_out):
            ok = False
            continue
        if tiers and above <= tiers[-1].above_input_tokens:
            r.fail(f"{tp}.above_input_tokens", f"must be greater than the tier before it "
                                               f"({tiers[-1].above_input_tokens}): tiers rise")
            ok = False
        tiers.append(PriceTier(above, t_in, t_out))
    if not ok or None in (base_in, base_out, discount):
        return None
    return Price(base_in, base_out, discount, tuple(tiers))


def _endpoint(r: _Reader, name: str, node: Any) -> Endpoint | None:
    p = f"endpoints.{name}"
    e = r.mapping(node, p)
    r.unknown(e, p, {"kind", "base_url", "api_key_env", "timeout_s", "max_connections", "options",
                     "allow_insecure"})
    kind = r.get(e, "kind", p, str)
    if kind is not None and kind not in ENDPOINT_KINDS:
        r.fail(f"{p}.kind", f"must be one of {', '.join(ENDPOINT_KINDS)}")
    base_url = r.get(e, "base_url", p, str, "")
    if kind in ("openai", "anthropic") and not base_url:
        r.fail(f"{p}.base_url", f"is required for kind {kind}")
    timeout = r.number(e, "timeout_s", p, lo=0.001, default=60.0)
    conns = r.number(e, "max_connections", p, lo=1, integer=True, default=256)
    options = r.mapping(e.get("options"), f"{p}.options", required=False)
    key_env = r.get(e, "api_key_env", p, str, "") or ""
    insecure = bool(r.get(e, "allow_insecure", p, bool, False))
    if base_url and key_env and not insecure and _cleartext_remote(base_url):
        r.fail(f"{p}.base_url", "sends the API key in clear text to a remote host (http://); "
                                "use https:// or set allow_insecure: true on this endpoint")
    if kind is None or timeout is None or conns is None:
        return None
    return Endpoint(name=name, kind=kind, base_url=base_url or "", api_key_env=key_env,
                    timeout_s=timeout, max_connections=conns, options=dict(options),
                    allow_insecure=insecure)


def _cleartext_remote(url: str) -> bool:
    """True for an http:// URL whose host is not this machine (loopback)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a DNS name: it could resolve anywhere


def _server(r: _Reader, node: Any, source: str) -> ServerConfig:
    srv = r.mapping(node, "server", required=False)
    r.unknown(srv, "server", {"host", "port", "max_message_bytes", "grace_s", "http_port",
                              "reflection", "tls"})
    tls = None
    if srv.get("tls") is not None:
        tn = r.mapping(srv.get("tls"), "server.tls")
        r.unknown(tn, "server.tls", {"cert", "key", "client_ca"})
        files: dict[str, str] = {}
        for name in ("cert", "key", "client_ca"):
            value = r.get(tn, name, "server.tls", str, "" if name == "client_ca" else ...)
            if not value:
                continue
            path = Path(value)
            if not path.is_absolute() and not source.startswith("<"):
                path = Path(source).parent / path
            if not path.is_file():
                r.fail(f"server.tls.{name}", f"no such file {str(path)!r}")
            files[name] = str(path)
        if "cert" in files and "key" in files:
            tls = TlsConfig(cert=files["cert"], key=files["key"], client_ca=files.get("client_ca", ""))
    return ServerConfig(
        host=r.get(srv, "host", "server", str, "127.0.0.1") or "127.0.0.1",
        port=r.number(srv, "port", "server", lo=0, hi=65535, integer=True, default=50051) or 0,
        max_message_bytes=r.number(srv, "max_message_bytes", "server", lo=1024, integer=True,
                                   default=4 * 1024 * 1024) or 4 * 1024 * 1024,
        grace_s=r.number(srv, "grace_s", "server", lo=0.0, default=5.0) or 0.0,
        http_port=r.number(srv, "http_port", "server", lo=0, hi=65535, integer=True, default=None),
        reflection=r.get(srv, "reflection", "server", bool, None),
        tls=tls,
    )


def _category(r: _Reader, name: str, node: Any) -> Category | None:
    p = f"categories.{name}"
    c = r.mapping(node, p)
    r.unknown(c, p, {"description", "exemplars", "keywords", "patterns", "complexity"})
    patterns = r.strings(c, "patterns", p)
    for i, pat in enumerate(patterns):
        try:
            re.compile(pat)
        except re.error as exc:
            r.fail(f"{p}.patterns[{i}]", f"invalid regex: {exc}")
    exemplars = r.strings(c, "exemplars", p)
    if not exemplars:
        r.fail(f"{p}.exemplars", "must list at least one example prompt")
    complexity = r.number(c, "complexity", p, lo=0.0, hi=1.0, default=0.3)
    return Category(name=name, description=r.get(c, "description", p, str, "") or "",
                    exemplars=exemplars, keywords=tuple(k.lower() for k in r.strings(c, "keywords", p)),
                    patterns=patterns, complexity=complexity if complexity is not None else 0.3)


def _llm_classifier(r: _Reader, cls: dict[str, Any], mode: str,
                    models: Any) -> LlmClassifierConfig | None:
    """`classifier.llm`: required with mode llm or cascade, refused with any other mode
    (a setting that would be silently ignored)."""
    p = "classifier.llm"
    if mode not in ("llm", "cascade"):
        if cls.get("llm") is not None:
            r.fail(p, f"only used with classifier.mode llm or cascade (mode is {mode!r})")
        return None
    n = r.mapping(cls.get("llm"), p)
    r.unknown(n, p, {"model", "local", "threshold", "timeout_ms", "cache_size", "cache_ttl_s",
                     "max_prompt_chars", "max_output_tokens"})
    d = LlmClassifierConfig("")
    model = r.get(n, "model", p, str)
    if model is not None and isinstance(models, dict) and model not in models:
        r.fail(f"{p}.model", f"unknown model {model!r} (it must be in models)")
    local = r.get(n, "local", p, str, d.local)
    if local is not None and local not in LOCAL_CLASSIFIER_MODES:
        r.fail(f"{p}.local", f"must be one of {', '.join(LOCAL_CLASSIFIER_MODES)}")
    values = (
        r.number(n, "threshold", p, lo=0.0, hi=1.0, default=d.threshold),
        r.number(n, "timeout_ms", p, lo=1.0, hi=60_000.0, default=d.timeout_ms),
        r.number(n, "cache_size", p, lo=0, hi=10_000_000, integer=True, default=d.cache_size),
        r.number(n, "cache_ttl_s", p, lo=0.0, default=d.cache_ttl_s),
        r.number(n, "max_prompt_chars", p, lo=100, hi=100_000, integer=True,
                 default=d.max_prompt_chars),
        r.number(n, "max_output_tokens", p, lo=8, hi=1024, integer=True,
                 default=d.max_output_tokens),
    )
    if model is None or local is None or any(v is None for v in values):
        return None
    return LlmClassifierConfig(model, local, *values)


def _weights(r: _Reader, node: Any, path: str) -> Weights:
    w = r.mapping(node, path, required=False)
    r.unknown(w, path, {"quality", "cost", "latency"})
    d = Weights()
    return Weights(
        quality=r.number(w, "quality", path, lo=0.0, default=d.quality) or 0.0,
        cost=r.number(w, "cost", path, lo=0.0, default=d.cost) or 0.0,
        latency=r.number(w, "latency", path, lo=0.0, default=d.latency) or 0.0,
    )


def _routing(r: _Reader, node: Any, models: Mapping[str, Any],
             categories: Mapping[str, Any]) -> RoutingConfig:
    p = "routing"
    g = r.mapping(node, p, required=False)
    r.unknown(g, p, {"default_strategy", "default_output_tokens", "weights", "complexity_tiers",
                     "domains", "max_fallbacks", "learned", "auto_models"})
    strategy = r.get(g, "default_strategy", p, str, "multi_objective")
    if strategy not in STRATEGIES:
        r.fail(f"{p}.default_strategy", f"must be one of {', '.join(STRATEGIES)}")
    tiers: list[ComplexityTier] = []
    for i, t in enumerate(r.get(g, "complexity_tiers", p, list, []) or []):
        tp = f"{p}.complexity_tiers[{i}]"
        tn = r.mapping(t, tp)
        mc = r.number(tn, "max_complexity", tp, lo=0.0, hi=1.0)
        ms = r.strings(tn, "models", tp, default=...)
        for j, m in enumerate(ms):
            if m not in models:
                r.fail(f"{tp}.models[{j}]", f"unknown model {m!r}")
        if mc is not None:
            tiers.append(ComplexityTier(mc, ms))
    if tiers and [t.max_complexity for t in tiers] != sorted(t.max_complexity for t in tiers):
        r.fail(f"{p}.complexity_tiers", "must be sorted by max_complexity")
    domains: dict[str, tuple[str, ...]] = {}
    dn = r.mapping(g.get("domains"), f"{p}.domains", required=False)
    for cat in dn:
        if cat not in categories and cat != "default":
            r.fail(f"{p}.domains.{cat}", "unknown category")
        ms = r.strings(dn, cat, f"{p}.domains", default=...)
        for j, m in enumerate(ms):
            if m not in models:
                r.fail(f"{p}.domains.{cat}[{j}]", f"unknown model {m!r}")
        domains[str(cat)] = ms
    ln = r.mapping(g.get("learned"), f"{p}.learned", required=False)
    r.unknown(ln, f"{p}.learned", {"artifact", "willingness_to_pay"})
    learned = LearnedConfig(
        artifact=r.get(ln, "artifact", f"{p}.learned", str, "") or "",
        willingness_to_pay=r.number(ln, "willingness_to_pay", f"{p}.learned", lo=0.0, hi=1.0,
                                    default=0.5) or 0.0,
    )
    auto = r.strings(g, "auto_models", p, default=("auto",))
    for j, m in enumerate(auto):
        if m in models:
            r.fail(f"{p}.auto_models[{j}]", f"{m!r} is a registry model; it would pin, not route")
    return RoutingConfig(
        auto_models=auto,
        default_strategy=strategy or "multi_objective",
        default_output_tokens=r.number(g, "default_output_tokens", p, lo=1, integer=True,
                                       default=512) or 512,
        weights=_weights(r, g.get("weights"), f"{p}.weights"),
        complexity_tiers=tuple(tiers),
        domains=domains,
        max_fallbacks=r.number(g, "max_fallbacks", p, lo=0, integer=True, default=3) or 0,
        learned=learned,
    )


def _sections(r: _Reader, top: dict[str, Any]) -> None:
    """Every top-level key must be a section that does something."""
    for key in top:
        if key in NOT_SUPPORTED:
            r.fail(str(key), f"not supported yet ({NOT_SUPPORTED[key]} is not implemented); "
                             "remove this section")
        elif key not in SECTIONS:
            r.fail(str(key), f"unknown section (known: {', '.join(sorted(SECTIONS))})")


def _non_finite(r: _Reader, node: Any, path: str) -> None:
    """inf and nan are never valid settings (YAML's .inf/.nan): one check for every section."""
    if isinstance(node, float) and not math.isfinite(node):
        r.fail(path or "(root)", f"must be a finite number, got {node}")
    elif isinstance(node, dict):
        for k, v in node.items():
            _non_finite(r, v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _non_finite(r, v, f"{path}[{i}]")


def missing_api_keys(config: Config) -> list[str]:
    """Warnings for openai/anthropic endpoints whose key variable is unset or empty.

    Read when asked (check-config, start-up), never at import time.
    """
    return [f"endpoints.{ep.name}.api_key_env: {ep.api_key_env} is not set; calls to this "
            f"{ep.kind} endpoint will be refused by the provider"
            for ep in config.endpoints.values()
            if ep.kind in ("openai", "anthropic") and ep.api_key_env
            and not os.environ.get(ep.api_key_env)]


def parse_config(raw: Any, source: str = "<memory>") -> Config:
    """Validate a parsed YAML tree and build the frozen `Config`."""
    r = _Reader()
    top = r.mapping(raw, "(root)")
    _sections(r, top)
    _non_finite(r, top, "")
    cls = r.mapping(top.get("classifier"), "classifier", required=False)
    r.unknown(cls, "classifier", {"mode", "embedding_weight", "feature_dim", "llm"})
    mode = r.get(cls, "mode", "classifier", str, "combined")
    if mode not in CLASSIFIER_MODES:
        r.fail("classifier.mode", f"must be one of {', '.join(CLASSIFIER_MODES)}")
    dim = r.number(cls, "feature_dim", "classifier", lo=16, hi=1 << 20, integer=True, default=1024)
    if dim and dim & (dim - 1):
        r.fail("classifier.feature_dim", "must be a power of two")
    classifier = ClassifierConfig(
        mode=mode or "combined",
        embedding_weight=r.number(cls, "embedding_weight", "classifier", lo=0.0, hi=1.0,
                                  default=0.6) or 0.0,
        feature_dim=dim or 1024,
        llm=_llm_classifier(r, cls, mode or "", top.get("models")),
    )
    cats = {}
    for name, node in r.mapping(top.get("categories"), "categories").items():
        c = _category(r, str(name), node)
        if c:
            cats[str(name)] = c
    models: dict[str, ModelSpec] = {}
    model_nodes = r.mapping(top.get("models"), "models")
    if not model_nodes and isinstance(top.get("models"), dict):
        r.fail("models", "must define at least one model")
    for name, node in model_nodes.items():
        spec = _model(r, str(name), node)
        if spec:
            models[str(name)] = spec
    endpoints = {}
    for name, node in r.mapping(top.get("endpoints"), "endpoints", required=False).items():
        ep = _endpoint(r, str(name), node)
        if ep:
            endpoints[str(name)] = ep
    for name, spec in models.items():
        for j, fb in enumerate(spec.fallbacks):
            if fb not in model_nodes:
                r.fail(f"models.{name}.fallbacks[{j}]", f"unknown model {fb!r}")
            elif fb == name:
                r.fail(f"models.{name}.fallbacks[{j}]", "a model cannot fall back to itself")
        for j, dep in enumerate(spec.deployments):
            if dep.endpoint and dep.endpoint not in endpoints:
                r.fail(f"models.{name}.deployments[{j}].endpoint",
                       f"unknown endpoint {dep.endpoint!r}")
        for cat in spec.quality:
            if cat != "default" and cats and cat not in cats:
                r.fail(f"models.{name}.quality.{cat}", "unknown category")
    routing = _routing(r, top.get("routing"), model_nodes, cats)
    server = _server(r, top.get("server"), source)
    version = r.get(top, "router_version", "", str, "routecore-default")
    if r.problems:
        raise ConfigError(r.problems)
    extra = {k: top[k] for k in top if k not in {"router_version", "classifier", "categories",
                                                 "routing", "models", "endpoints", "server"}}
    return Config(router_version=version or "", classifier=classifier, categories=cats,
                  routing=routing, models=models, endpoints=endpoints, server=server,
                  extra=extra, source=source)


def load_config(path: str | Path | None) -> Config:
    """Load and validate a config file; None loads the built-in defaults."""
    if path is None:
        text = resources.files("routecore").joinpath("defaults.yaml").read_text("utf-8")
        source = "<built-in defaults>"
    else:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from exc
        source = str(path)
    try:
        raw = yaml.safe_load(text)
        return parse_config(raw, source)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: invalid YAML ({exc})"]) from exc
    except RecursionError as exc:  # an alias inside itself (`a: &a [*a]`), or nesting that deep
        raise ConfigError([f"{source}: nested too deeply (a YAML alias that contains "
                           "itself?)"]) from exc
