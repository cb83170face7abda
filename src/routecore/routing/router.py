"""The Router: the one code path from a request to a routing decision.

    from routecore import Router
    router = Router.from_config(None)          # built-in defaults
    decision = router.route("What is 2+2?")

The gRPC servicer, the CLI and `routecore eval` all call `Router.route`.
The path is synchronous and non-blocking: feature extraction and nearest
lookup in the compiled core, then the vectorised policy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from routecore.config import Config, load_config
from routecore.domain import (
    CAPABILITIES,
    NO_CONSTRAINTS,
    ROLES,
    STRATEGIES,
    BudgetState,
    Classification,
    Constraints,
    Decision,
    LoadSnapshot,
    Message,
    RequestIds,
    RouteRequest,
    Weights,
)
from routecore.errors import ConfigError, InvalidRequest, echo, echo_list
from routecore.routing.ab import CANDIDATE, assign, parse_ab
from routecore.routing.arbitrage import Choice, Health, choose
from routecore.routing.classifier import Classifier, Features
from routecore.routing.compress import Compressor, applied, check_spec, parse_compress
from routecore.routing.features import FeatureExtractor
from routecore.routing.load import LoadView, parse_load
from routecore.routing.output_length import OutputEstimate, OutputLength
from routecore.routing.policy import Policy, PolicyInput, QualityModel
from routecore.routing.registry import Registry
from routecore.routing.tokens import count_chat_tokens

MAX_PROMPT_CHARS = 4_000_000
_KNOWN_CAPS = frozenset(CAPABILITIES)


def _check_limit(value: float | None, field: str) -> None:
    if value is not None:
        _check_number(value, f"constraints.{field}")


def _check_number(value: float, field: str) -> None:
    if not math.isfinite(value):  # inf would turn every score into NaN
        raise InvalidRequest(f"{field}: must be a finite number, got {value}")
    if value < 0:
        raise InvalidRequest(f"{field}: must be >= 0, got {value}")


class Router:
    """Routes requests with a frozen config, registry, classifier and policy."""

    def __init__(self, config: Config, learned: QualityModel | None = None,
                 candidate: QualityModel | None = None) -> None:
        self.config = config
        self.registry = Registry(config)
        self.extractor = FeatureExtractor(config.classifier.feature_dim)
        self.classifier = Classifier(config, self.extractor)
        self.learned = learned
        self.policy = Policy(config, self.registry, learned)
        self.version = config.router_version
        # A/B: a candidate router version (a strategy, or a learned artifact) takes
        # `share` of the traffic, sticky per user or tenant.
        self.ab = parse_ab(config.extra)
        self.candidate = candidate
        self.candidate_policy = Policy(config, self.registry, candidate) if candidate else None
        if self.ab is not None and not self.ab.candidate_is_strategy and candidate is None:
            raise ConfigError([f"ab.candidate.artifact: {self.ab.candidate!r} was not loaded"])
        self._new_request_id = RequestIds()
        self.output_length = OutputLength(config.routing.default_output_tokens)
        self.load_config = parse_load(config.extra.get("load"))
        # Set by the completion layer (config `load`): the fleet's observed load, read
        # without I/O; the view over it is rebuilt once per snapshot.
        self.load_source: Callable[[], LoadSnapshot] | None = None
        self._load_view: LoadView | None = None
        self.compressor = Compressor(parse_compress(config.extra, tuple(config.categories)))
        # Set by the completion layer: model -> why it is unhealthy (open breaker).
        self.health_source: Callable[[], Mapping[str, str]] | None = None
        # Set by the completion layer: deployment key -> why it is unhealthy ("" healthy).
        self.deployment_health: Health | None = None
        # Set by the server when budgets are on: (tenant, user, key_id) -> the caller's
        # budget state, read without I/O (pacing shifts spend toward cheaper models).
        self.budget_source: Callable[[str, str, str], BudgetState | None] | None = None

    def health(self) -> Mapping[str, str] | None:
        """Models the completion layer reports unhealthy (model -> why), if it is attached."""
        return self.health_source() if self.health_source is not None else None

    @classmethod
    def from_config(cls, config: str | Path | Config | None) -> Router:
        """Build a router from a config file, a parsed `Config`, or None (defaults)."""
        cfg = config if isinstance(config, Config) else load_config(config)
        learned = None
        if cfg.routing.learned.artifact:
            learned = _load_learned(cfg, cfg.routing.learned.artifact, "routing.learned.artifact")
        ab = parse_ab(cfg.extra)
        candidate = None
        if ab is not None and not ab.candidate_is_strategy:
            candidate = _load_learned(cfg, ab.candidate, "ab.candidate.artifact")
        return cls(cfg, learned, candidate)

    # -- request validation (the edge of the domain) -------------------------

    def validate(self, req: RouteRequest, text: bool = True) -> None:
        """Raise InvalidRequest (naming the field) unless `req` can be routed (`text=False`:
        its classification is already known, the prompt may be absent)."""
        if text and not req.prompt.strip() and not any(m.content.strip() for m in req.messages):
            raise InvalidRequest("prompt: must not be empty (give a prompt or messages)")
        if req.prompt and req.messages:
            raise InvalidRequest("prompt and messages: give one or the other, not both")
        for i, m in enumerate(req.messages):
            if m.role not in ROLES:
                raise InvalidRequest(
                    f"messages[{i}].role: unknown role {echo(m.role)} (known: {', '.join(ROLES)})")
        size = len(req.prompt) + sum(len(m.content) for m in req.messages)
        if size > MAX_PROMPT_CHARS:
            raise InvalidRequest(f"prompt: {size} characters exceeds {MAX_PROMPT_CHARS}")
        if req.strategy and req.strategy not in STRATEGIES:
            raise InvalidRequest(
                f"strategy: unknown strategy {echo(req.strategy)} (known: {', '.join(STRATEGIES)})")
        if req.strategy == "learned" and self.learned is None and self.candidate is None:
            raise InvalidRequest(
                "strategy: 'learned' needs a trained router (config routing.learned.artifact)")
        w = req.willingness_to_pay
        if w is not None and not (0.0 <= w <= 1.0):
            raise InvalidRequest(f"willingness_to_pay: must be in [0, 1], got {w}")
        if req.weights is not None:
            for name in ("quality", "cost", "latency"):
                _check_number(getattr(req.weights, name), f"weights.{name}")
        if req.compress is not None:
            check_spec(req.compress)
        if req.model:
            self.registry.check_known(frozenset((req.model,)), "model")
            if req.constraints.allow_models and req.model not in req.constraints.allow_models:
                raise InvalidRequest(f"model: {req.model!r} is not in constraints.allow_models")
        c = req.constraints
        if c is NO_CONSTRAINTS:
            return
        _check_limit(c.max_cost_usd, "max_cost_usd")
        _check_limit(c.max_latency_ms, "max_latency_ms")
        _check_limit(c.min_quality, "min_quality")
        if c.min_quality is not None and c.min_quality > 1:
            raise InvalidRequest(f"constraints.min_quality: must be <= 1, got {c.min_quality}")
        if not c.required_capabilities <= _KNOWN_CAPS:
            unknown = sorted(c.required_capabilities - _KNOWN_CAPS)
            raise InvalidRequest(
                f"constraints.required_capabilities: unknown {echo_list(unknown)} "
                f"(known: {', '.join(CAPABILITIES)})")
        if c.allow_models:
            self.registry.check_known(c.allow_models, "constraints.allow_models")
        if c.deny_models:
            self.registry.check_known(c.deny_models, "constraints.deny_models")

    # -- routing -------------------------------------------------------------

    def route(
        self,
        request: str | RouteRequest | None = None,
        *,
        messages: Iterable[Message | Mapping[str, str]] | None = None,
        strategy: str = "",
        constraints: Constraints | None = None,
        willingness_to_pay: float | None = None,
        weights: Weights | None = None,
        tenant: str = "",
        user: str = "",
        request_id: str = "",
    ) -> Decision:
        """Decide which model should answer. Raises InvalidRequest or NoModelAvailable."""
        if isinstance(request, RouteRequest):
            req = request
        else:
            msgs = tuple(m if isinstance(m, Message) else Message(str(m.get("role", "user")),
                                                                   str(m.get("content", "")))
                         for m in (messages or ()))
            req = RouteRequest(prompt=request or "", messages=msgs, tenant=tenant, user=user,
                               strategy=strategy, constraints=constraints or NO_CONSTRAINTS,
                               request_id=request_id, willingness_to_pay=willingness_to_pay,
                               weights=weights)
        return self._route(req)

    def _route(self, req: RouteRequest) -> Decision:
        t0 = time.perf_counter_ns()
        self.validate(req)
        text = req.text()
        feats = self.classifier.features(text)
        return self.decide(req, text, feats, self.classifier.classify(text, feats), t0)

    def route_classified(self, req: RouteRequest, classification: Classification,
                         input_tokens: int, output: tuple[int, str] | None = None) -> Decision:
        """Route a request whose classification is already known (offline replay of an
        audit trail kept without prompts): the same `decide` as `route`; `output`, the
        logged output estimate (tokens, basis) when it was not the default. The learned
        strategy reads the prompt itself, so it is refused here."""
        t0 = time.perf_counter_ns()
        self.validate(req, text=False)
        feats = Features(np.zeros(0, np.float32), np.zeros(0, np.float32), input_tokens)
        return self.decide(req, req.text(), feats, classification, t0,
                           output=OutputEstimate(*output) if output else None)

    def decide(self, req: RouteRequest, text: str, feats: Features, cls: Classification,
               t0: int, unhealthy: Mapping[str, str] | None = None,
               output: OutputEstimate | None = None) -> Decision:
        """The decision for a validated request whose features and classification are
        known (`route` and `routing.batch` share it); `t0` (perf_counter_ns) starts
        its decision_micros. `unhealthy` (a batch reads it once): else the health source."""
        routing = self.config.routing
        # Compression (routing/compress.py): decided on, and counted as, the compressed prompt.
        compression = self.compressor.compress(req, cls.category) if text else None
        if compression is not None:
            req = applied(req, compression)
            text = req.text()
        input_tokens = (compression.input_tokens if compression is not None else
                        count_chat_tokens(req.messages) if req.messages else feats.tokens)
        limit = req.constraints.max_output_tokens
        out = output or self.output_length.estimate(_ask(req, text), input_tokens, limit)
        strategy = req.strategy or routing.default_strategy
        policy, variant = self.policy, ""
        request_id = req.request_id or self._new_request_id()
        if self.ab is not None:
            variant = assign(self.ab, user=req.user, tenant=req.tenant, request_id=request_id)
            # The candidate decides unless the caller pinned a strategy.
            if variant == CANDIDATE and not req.strategy:
                if self.ab.candidate_is_strategy:
                    strategy = self.ab.candidate
                elif self.candidate_policy is not None:
                    strategy, policy = "learned", self.candidate_policy
        if strategy == "learned" and policy.learned is None:
            strategy = "multi_objective"
        if strategy == "learned" and not text:
            raise InvalidRequest("strategy learned: needs the prompt (audit.store_prompts)")
        wtp = (req.willingness_to_pay if req.willingness_to_pay is not None
               else routing.learned.willingness_to_pay)
        constraints = req.constraints
        if req.model:  # the policy still checks the constraints and explains the estimates
            constraints = replace(constraints, allow_models=frozenset((req.model,)))
        budget = (self.budget_source(req.tenant, req.user, req.key_id)
                  if self.budget_source is not None else None)
        pacing, pacing_note = 0.0, ""
        if budget is not None and budget.pacing > 0.0:
            pacing, pacing_note = budget.pacing, f"{budget.cap} at {budget.share_used:.0%}"
        view = None
        if self.load_source is not None and not req.model:  # a pinned model goes regardless
            snap = self.load_source()
            view = self._load_view
            if view is None or view.version != snap.version:
                view = self._load_view = LoadView(snap, self.registry, self.load_config)
        result = policy.decide(
            PolicyInput(text=text, vec=feats.vec, classification=cls, input_tokens=input_tokens,
                        output_tokens=out.tokens, constraints=constraints,
                        strategy=strategy, weights=req.weights or routing.weights,
                        willingness_to_pay=wtp, pacing=pacing,
                        pacing_note=pacing_note, load=view,
                        output_limit=limit if limit else -1, output_basis=out.basis),
            # A pinned model is tried even behind an open breaker: its fallbacks follow it.
            None if req.model else unhealthy if unhealthy is not None else self.health(),
        )
        spec = self.registry.specs[result.model]
        fallbacks, reason = result.fallbacks, result.reason
        if req.model:
            c = req.constraints  # the pinned model's own fallbacks, within the allow/deny lists
            fallbacks = tuple(f for f in spec.fallbacks if f not in c.deny_models and (
                not c.allow_models or f in c.allow_models))[:routing.max_fallbacks]
            reason = f"pinned: the request named {req.model}; {reason}"
        # Which of the model's deployments sells it cheapest within the constraints.
        sold = choose(spec, input_tokens, out.tokens, req.constraints, self.deployment_health,
                      self.registry.prices[self.registry.index[result.model]])
        if sold.reason:
            reason = f"{reason}; {sold.reason}"
        micros = (time.perf_counter_ns() - t0) // 1000
        return Decision(
            model=result.model, provider=sold.provider, model_version=spec.version,
            fallbacks=fallbacks, category=cls.category,
            category_confidence=cls.confidence, complexity=cls.complexity,
            estimated_cost_usd=self._at_deployment(result.estimated_cost_usd, sold,
                                                   input_tokens, out.tokens),
            estimated_latency_ms=result.estimated_latency_ms,
            predicted_quality=result.predicted_quality, reason=reason,
            candidates=result.candidates, router_version=self.version, strategy=strategy,
            input_tokens=input_tokens, request_id=request_id,
            decision_micros=int(micros), variant=variant, budget=budget,
            category_scores=cls.scores, deployment=sold.deployment,
            deployment_order=sold.order, output_tokens=out.tokens, output_basis=out.basis,
            load=view.models if view is not None else None, compression=compression,
        )


    def _at_deployment(self, estimate: float, sold: Choice, input_tokens: int,
                       output_tokens: int) -> float:
        """The policy's cost estimate (its own output length, learned or not) moved from the
        model's list price to the chosen deployment's."""
        if sold.cost_usd is None or sold.list_cost_usd <= 0.0:
            return estimate if sold.cost_usd is None else sold.cost_usd
        return estimate * sold.cost_usd / sold.list_cost_usd


def _ask(req: RouteRequest, text: str) -> str:
    """What the caller asks: the last user message (else the prompt, else all the text)."""
    for m in reversed(req.messages):
        if m.role == "user":
            return m.content
    return req.prompt or text


def _load_learned(cfg: Config, path: str, field: str) -> QualityModel:
    """Load a learned-router artifact and check its models exist in the registry."""
    from routecore.routing.learned_model import LearnedRouter  # only when configured

    if not Path(path).exists():
        raise ConfigError([f"{field}: {path!r} does not exist"])
    try:
        learned: Any = LearnedRouter.load(path)
    except Exception as exc:  # an unreadable artifact is a config problem, named as such
        raise ConfigError([f"{field}: cannot load {path!r} ({exc})"]) from exc
    missing = [m for m in learned.models if m not in cfg.models]
    if missing:
        raise ConfigError([f"{field}: model {m!r} in the artifact is not in models"
                           for m in missing])
    result: QualityModel = learned
    return result
