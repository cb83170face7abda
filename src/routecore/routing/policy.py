"""The routing policy: constraints, strategies, and a decision that explains itself.

Constraints reject (each rejected candidate says why); the strategy orders the
rest; the best is chosen and the next ones become fallbacks. The per-model
arithmetic (estimates, constraint checks, strategy scores, the ranking) is one
call into the compiled core, `score_models` (its pure-Python twin when the
core is off); Python keeps the name checks (sets), formats reason strings only
for rejected models, and runs the learned router.

Predicted quality is the model's per-category quality, mixed by the
classifier's category probabilities, with its error rate scaled by
complexity: `1 - (1 - q) * (0.1 + 3 * complexity**2)`, clipped to [0, 1]. On
easy prompts cheap and strong models are close (0.6 -> 0.95 and 0.94 -> 0.99
at complexity 0.1); on hard ones the gap widens (0.6 -> 0.0 and 0.94 -> 0.85
at 0.9).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from routecore import _fast
from routecore._fast import _constants as K
from routecore.config import Config
from routecore.domain import CandidateTable, Classification, Constraints, Weights
from routecore.errors import ModelsUnavailable, NoModelAvailable
from routecore.routing.load import LoadView
from routecore.routing.registry import Registry, capability_mask

F64 = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]

# Strategies cost / latency accept models within this much of the best quality.
QUALITY_TOLERANCE = K.QUALITY_TOLERANCE
# Multi-objective: a 10x cost (or latency) difference is worth this much quality
# at weight 1.
DECADE_VALUE = K.DECADE_VALUE

_SCORE_CODE = {"quality": K.SCORE_QUALITY, "cost": K.SCORE_COST, "latency": K.SCORE_LATENCY,
               "complexity": K.SCORE_COMPLEXITY, "domain": K.SCORE_DOMAIN,
               "multi_objective": K.SCORE_MULTI}
_NAN = math.nan


class QualityModel(Protocol):
    """A learned router as the policy sees it (see routecore.learned)."""

    models: tuple[str, ...]

    def predict(self, text: str, vec: npt.NDArray[np.float32] | None
                ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...

    def choose(self, quality: npt.NDArray[np.float64], cost: npt.NDArray[np.float64],
               willingness_to_pay: float, eligible: npt.NDArray[np.bool_]) -> int: ...

    def learn(self, text: str, model: str, score: float) -> None: ...


@dataclass(frozen=True, slots=True)
class PolicyInput:
    text: str
    vec: npt.NDArray[np.float32] | None
    classification: Classification
    input_tokens: int
    output_tokens: int
    constraints: Constraints
    strategy: str
    weights: Weights
    willingness_to_pay: float
    # Budget pacing in [0, 1]: 0 leaves the choice alone; rising to 1, the per-request
    # cost ceiling falls from the dearest eligible model to the cheapest.
    pacing: float = 0.0
    pacing_note: str = ""  # which budget, for the reason
    # What the fleet observes (observed latency, models at a limit); None: priors only.
    load: LoadView | None = None
    # Output room the model must have (context, max output): the caller's
    # max_output_tokens; -1: output_tokens, the expected length.
    output_limit: int = -1
    output_basis: str = ""  # why output_tokens (routing/output_length.py), for the reason


@dataclass(frozen=True, slots=True)
class PolicyResult:
    model: str
    fallbacks: tuple[str, ...]
    candidates: CandidateTable
    reason: str
    predicted_quality: float
    estimated_cost_usd: float
    estimated_latency_ms: float


@functools.lru_cache(maxsize=256)
def _multi_note(quality: float, cost: float, latency: float) -> str:
    return f"best weighted score (quality {quality:g}, cost {cost:g}, latency {latency:g})"


def _fmt_usd(x: float) -> str:
    return f"${x:.6f}" if x < 0.01 else f"${x:.4f}"


class Policy:
    """Scores, filters and orders the registry's models for one request."""

    def __init__(self, config: Config, registry: Registry,
                 learned: QualityModel | None = None) -> None:
        self.registry = registry
        self.routing = config.routing
        self.learned = learned
        n = len(registry)
        # The learned router's model i answers as registry model learned_index[i].
        self.learned_index: list[int] = (
            [registry.index[m] for m in learned.models] if learned is not None else [])
        self._li = np.array(self.learned_index, dtype=np.int64)
        self._outside = [i for i in range(len(registry)) if i not in set(self.learned_index)]
        self._tiers = [(t.max_complexity, [registry.index[m] for m in t.models])
                       for t in config.routing.complexity_tiers]
        # Strategy boosts (NaN: none). Complexity, per matching tier: the matching
        # tier first, then higher tiers (safer), then lower ones; models in no tier
        # rank by quality, below every tier.
        self._tier_boost: list[F64] = []
        for chosen in range(len(self._tiers)):
            boost = np.full(n, -math.inf)
            order = [chosen, *range(chosen + 1, len(self._tiers)), *range(chosen - 1, -1, -1)]
            for rank, t in enumerate(order):
                for pos, m in enumerate(self._tiers[t][1]):
                    boost[m] = max(boost[m], 100.0 - 10.0 * rank - 0.01 * pos)
            boost[np.isinf(boost)] = np.nan
            self._tier_boost.append(boost)
        # Domain: the category's preferred models score 100, 99, ... (an empty
        # list falls back to "default").
        self._domain_boost: dict[str, F64] = {}
        for cat, models in config.routing.domains.items():
            if models:
                boost = np.full(n, np.nan)
                for pos, name in enumerate(models):
                    boost[registry.index[name]] = 100.0 - pos
                self._domain_boost[cat] = boost
        self._domain_default = self._domain_boost.get("default")
        # One row per model: the columns score_models reads, then quality per category.
        cols = [registry.price_in, registry.price_out, registry.p50_ms, registry.tokens_per_s,
                registry.context_window, registry.max_output,
                registry.cap_mask.astype(np.float64), registry.default_quality, registry.p95_ms]
        assert len(cols) == K.N_MODEL_COLS
        self._table: F64 = np.ascontiguousarray(
            np.column_stack([*cols, registry.quality.reshape(n, -1)]), dtype=np.float64)
        self._table.flags.writeable = False
        # Long-context price tiers: (model row, above input tokens, input, output per token).
        self._long = [(i, t.above_input_tokens, t.input / 1e6, t.output / 1e6)
                      for i, p in enumerate(registry.prices) for t in p.tiers]  # rising
        self._long_from = min((t[1] for t in self._long), default=0)
        self._live: tuple[int, F64] = (-1, self._table)  # (load view version, its table)

    def _priced(self, input_tokens: int, load: LoadView | None) -> F64:
        """The model table with the observed latencies (one copy per load snapshot) and
        the long-context rates of the models this prompt is past (a copy only for such
        prompts, which are rare)."""
        base = self._table
        if load is not None:
            version, base = self._live
            if version != load.version:
                base = self._table.copy()
                base[:, K.COL_P50] = load.p50
                base[:, K.COL_P95] = load.p95
                base.flags.writeable = False
                self._live = (load.version, base)
        if not self._long_from or input_tokens <= self._long_from:
            return base
        table = base.copy()
        for i, above, p_in, p_out in self._long:
            if input_tokens > above:
                table[i, K.COL_PRICE_IN], table[i, K.COL_PRICE_OUT] = p_in, p_out
        return table

    # -- constraints ---------------------------------------------------------

    def _name_codes(self, c: Constraints, unhealthy: Mapping[str, str]) -> npt.NDArray[np.int8]:
        """The checks by name (deny, allow, health) as score_models codes."""
        codes = np.zeros(len(self.registry), dtype=np.int8)
        allow = c.allow_models
        for i, name in enumerate(self.registry.names):
            if name in c.deny_models:
                codes[i] = K.FAIL_DENIED
            elif allow and name not in allow:
                codes[i] = K.FAIL_NOT_ALLOWED
            elif name in unhealthy:
                codes[i] = K.FAIL_UNHEALTHY
        return codes

    def _why(self, code: int, i: int, inp: PolicyInput, q: float, cost: float, lat: float,
             unhealthy: Mapping[str, str], table: F64, limited: Mapping[int, str]) -> str:
        """The rejection reason for a score_models fail code."""
        reg, c = self.registry, inp.constraints
        it, ot = inp.input_tokens, inp.output_tokens
        name = reg.names[i]
        if code == K.FAIL_DENIED:
            return "denied by deny_models"
        if code == K.FAIL_NOT_ALLOWED:
            return "not in allow_models"
        if code == K.FAIL_CAPABILITY:
            missing = sorted(c.required_capabilities - reg.specs[name].capabilities)
            return f"lacks capability: {', '.join(missing)}"
        if inp.output_limit >= 0:
            ot = inp.output_limit
        if code == K.FAIL_CONTEXT:
            ctx = int(self._table[i, K.COL_CONTEXT])
            return f"context: {it} prompt + {ot} output tokens > {ctx} window"
        if code == K.FAIL_MAX_OUTPUT:
            return f"max output {ot} tokens > model limit {int(self._table[i, K.COL_MAX_OUTPUT])}"
        if code == K.FAIL_UNHEALTHY:
            return f"unhealthy: {unhealthy[name]}"
        if code == K.FAIL_AT_LIMIT:
            return limited[i]
        if code == K.FAIL_COST:
            assert c.max_cost_usd is not None
            return f"estimated cost {_fmt_usd(cost)} > max_cost_usd {_fmt_usd(c.max_cost_usd)}"
        if code == K.FAIL_LATENCY:
            assert c.max_latency_ms is not None
            # the kernel's estimate, made with p95 (only for this message)
            p, tps = float(table[i, K.COL_P95]), float(table[i, K.COL_TPS])
            p95 = max(p + (inp.output_tokens - 512.0) / tps * 1000.0, 0.2 * p) + it * 50.0 / tps
            note = inp.load.note(i) if inp.load is not None else ""
            return (f"estimated p95 latency {p95:,.0f} ms > max_latency_ms "
                    f"{c.max_latency_ms:,.0f}" + (f" ({note})" if note else ""))
        assert code == K.FAIL_QUALITY and c.min_quality is not None
        return f"predicted quality {q:.3f} < min_quality {c.min_quality:.3f}"

    # -- strategies ------------------------------------------------------------

    def _boost(self, strategy: str, cls: Classification) -> F64 | None:
        if strategy == "complexity":
            if not self._tiers:
                return None
            chosen = next((i for i, (mc, _) in enumerate(self._tiers) if cls.complexity <= mc),
                          len(self._tiers) - 1)
            return self._tier_boost[chosen]
        if strategy == "domain":
            boost = self._domain_boost.get(cls.category)
            return self._domain_default if boost is None else boost
        return None

    def _note(self, inp: PolicyInput, target: float) -> str:
        s = inp.strategy
        if s == "quality":
            return "highest predicted quality"
        if s in ("cost", "latency"):
            what = "cheapest" if s == "cost" else "fastest"
            return f"{what} model with predicted quality >= {target:.3f}"
        if s == "complexity":
            return f"complexity tier for {inp.classification.complexity:.2f}"
        if s == "domain":
            return f"preferred for category {inp.classification.category}"
        w = inp.weights
        return _multi_note(w.quality, w.cost, w.latency)

    # -- the decision --------------------------------------------------------

    def decide(self, inp: PolicyInput, unhealthy: Mapping[str, str] | None = None) -> PolicyResult:
        """The decision; raises NoModelAvailable (the request cannot be served as asked) or
        ModelsUnavailable (it could, but every model that fits is unhealthy right now)."""
        try:
            return self._decide(inp, unhealthy or {})
        except NoModelAvailable as exc:
            if not any(r.startswith(("unhealthy", "at its limit")) for r in exc.reasons.values()):
                raise
            # Raises the real reasons when health and limits were not what stood in the way.
            healthy = self._decide(inp, {}, limits=False)
            out = {m: unhealthy[m] for m in (healthy.model, *healthy.fallbacks)
                   if unhealthy and m in unhealthy}
            for m in (healthy.model, *healthy.fallbacks):
                why = exc.reasons.get(m, "")
                if why.startswith("at its limit") and m not in out:
                    out[m] = why
            first = out.get(healthy.model) or next(iter(out.values()), "busy")
            raise ModelsUnavailable(list(out), first) from None

    def _decide(self, inp: PolicyInput, unhealthy: Mapping[str, str],
                limits: bool = True) -> PolicyResult:
        reg = self.registry
        c, cls, strategy = inp.constraints, inp.classification, inp.strategy
        codes = (self._name_codes(c, unhealthy)
                 if c.deny_models or c.allow_models or unhealthy else None)
        load = inp.load
        limited: Mapping[int, str] = {}
        if load is not None and limits:
            limited, at_limit = load.limited(inp.input_tokens + (
                inp.output_limit if inp.output_limit >= 0 else inp.output_tokens))
            if at_limit is not None:  # the name checks come first
                codes = at_limit if codes is None else np.where(codes == 0, at_limit, codes)
        probs = None
        if reg.categories:
            probs = cls.probs
            if probs is None:
                probs = np.array([cls.scores.get(x, 0.0) for x in reg.categories])
        code = _SCORE_CODE.get(strategy, K.SCORE_MULTI)
        learned = self.learned if strategy == "learned" else None
        overrides = None
        if learned is not None:
            lq, lc = learned.predict(inp.text, inp.vec)
            overrides = np.full((2, len(reg)), np.nan)
            overrides[0, self._li] = lq
            overrides[1, self._li] = lc
            code = K.SCORE_NONE
        w = inp.weights
        table = self._priced(inp.input_tokens, load)
        q, cost, lat, score, fail, order, target = _fast.score_models(
            table, probs, codes, self._boost(strategy, cls), overrides,
            cls.complexity,
            capability_mask(c.required_capabilities) if c.required_capabilities else 0,
            inp.input_tokens, inp.output_tokens,
            _NAN if c.max_cost_usd is None else c.max_cost_usd,
            _NAN if c.max_latency_ms is None else c.max_latency_ms,
            _NAN if c.min_quality is None else c.min_quality,
            code, w.quality, w.cost, w.latency, inp.output_limit)
        n = len(reg)
        reasons = [""] * n
        if len(order) < n:
            for i in np.flatnonzero(fail).tolist():
                reasons[i] = self._why(int(fail[i]), i, inp, float(q[i]), float(cost[i]),
                                       float(lat[i]), unhealthy, table, limited)

        pace_note = ""
        if inp.pacing > 0.0:
            pace_note = self._pace(inp, cost, reasons, order.tolist() if learned is None else
                                   [i for i in self.learned_index if not reasons[i]])
            if learned is None:
                order = np.array([i for i in order.tolist() if not reasons[i]], dtype=np.int64)
        if learned is not None:
            for i in self._outside:
                if not reasons[i]:
                    reasons[i] = "not in the learned router's artifact"
            ok = [i for i, r in enumerate(reasons) if not r]
            if not ok:
                raise NoModelAvailable(dict(zip(reg.names, reasons, strict=True)))
            li = self._li
            elig = np.array([not reasons[i] for i in self.learned_index], dtype=bool)
            pick = self.learned_index[learned.choose(q[li], cost[li], inp.willingness_to_pay,
                                                     elig)]
            score = q.copy()
            score[pick] = 2.0  # above any quality: the learned router's choice
            keys = (-score).tolist()
            ranked = sorted(ok, key=keys.__getitem__)  # stable: ties keep registry order
            strategy_note = f"learned router at willingness_to_pay {inp.willingness_to_pay:.3f}"
        else:
            ranked = order.tolist()
            if not ranked:
                raise NoModelAvailable(dict(zip(reg.names, reasons, strict=True)))
            strategy_note = self._note(inp, target)
        best = ranked[0]
        fallbacks = self._fallbacks(best, ranked, reasons)
        annotate = None
        if strategy == "multi_objective":
            # With positive weights the weighted-sum winner is never dominated, so the
            # Pareto filter only explains the others: computed when candidates are read.
            def annotate(rs: list[str]) -> None:
                # The compiled kernel: the audit trail reads every decision's candidates.
                dom = _fast.pareto_dominators(q, cost, lat, [not r for r in rs]).tolist()
                names = reg.names
                for b, a in enumerate(dom):
                    if a >= 0 and b != best:
                        rs[b] = f"pareto-dominated by {names[a]}"

        candidates = CandidateTable(reg.names, reg.providers, q, cost, lat, score, reasons,
                                    annotate)
        qb, cb, lb = float(q[best]), float(cost[best]), float(lat[best])
        runner = f"; runner-up {reg.names[ranked[1]]}" if len(ranked) > 1 else ""
        reason = (f"{strategy}: {strategy_note}; category {cls.category} "
                  f"(confidence {cls.confidence:.2f}), complexity {cls.complexity:.2f}; chose "
                  f"{reg.names[best]} (quality {qb:.3f}, {_fmt_usd(cb)}, "
                  f"{lb:.0f} ms){runner}; {n - len(ranked)} of {n} candidates fail the "
                  f"constraints{pace_note}")
        if inp.output_basis and inp.output_basis != "default":
            reason += f"; output ~{inp.output_tokens:,} tokens ({inp.output_basis})"
        if load is not None:
            note = load.note(best)
            if note:
                reason += f"; load: {note}"
            if limited:
                reason += f"; {len(limited)} model(s) at a limit"
        return PolicyResult(model=reg.names[best], fallbacks=fallbacks, candidates=candidates,
                            reason=reason, predicted_quality=qb,
                            estimated_cost_usd=cb, estimated_latency_ms=lb)

    @staticmethod
    def _pace(inp: PolicyInput, cost: F64, reasons: list[str], eligible: list[int]) -> str:
        """Budget pacing: reject eligible models above a cost ceiling that falls, on a log
        scale, from the dearest eligible model (pacing 0) to the cheapest (pacing 1), so
        the choice slides toward cheaper models as spend nears the cap. Returns the note
        for the decision's reason."""
        if not eligible:
            return ""
        costs = cost[eligible].tolist()
        lo, hi = min(costs), max(costs)
        p = min(1.0, inp.pacing)
        ceiling = lo * (hi / lo) ** (1.0 - p) if lo > 0 else hi * (1.0 - p)
        ceiling = max(ceiling, lo) * (1 + 1e-9)  # the cheapest eligible model always stays
        # One shared reason (each candidate reports its own estimate beside it): formatting
        # one string per model would cost more than the rest of the pacing.
        why = f"budget pacing: estimated cost above the ceiling {_fmt_usd(ceiling)}"
        over = 0
        for i, c in zip(eligible, costs, strict=True):
            if c > ceiling:
                reasons[i] = why
                over += 1
        return (f"; budget pacing {p:.2f} ({inp.pacing_note}): cost ceiling "
                f"{_fmt_usd(ceiling)}, {over} dearer model(s) set aside")

    def _fallbacks(self, best: int, ranked: list[int], reasons: list[str]) -> tuple[str, ...]:
        """The chosen model's configured fallbacks that pass the constraints, then the
        next best candidates by score (Pareto-dominated ones may serve as fallbacks)."""
        reg = self.registry
        limit = self.routing.max_fallbacks
        out: list[str] = []
        for name in reg.specs[reg.names[best]].fallbacks:
            if not reasons[reg.index[name]] and name not in out:
                out.append(name)
        names = reg.names
        for i in ranked[1:]:
            if len(out) >= limit:
                break
            if names[i] not in out:
                out.append(names[i])
        return tuple(out[:limit])
