"""The routing policy: constraints, strategies, and a decision that explains itself.

Constraints reject (each rejected candidate says why); the strategy orders the
rest; the best is chosen and the next ones become fallbacks. A registry holds
tens of models, so per-model arithmetic runs on plain Python floats: at that
size a list comprehension beats a chain of small numpy calls (each ~1 us).

Predicted quality is the model's per-category quality, mixed by the
classifier's category probabilities, with its error rate scaled by
complexity: `1 - (1 - q) * (0.1 + 3 * complexity**2)`, clipped to [0, 1]. On
easy prompts cheap and strong models are close (0.6 -> 0.95 and 0.94 -> 0.99
at complexity 0.1); on hard ones the gap widens (0.6 -> 0.0 and 0.94 -> 0.85
at 0.9).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .config import Config
from .domain import CandidateTable, Classification, Constraints, Weights
from .errors import NoModelAvailable
from .registry import Registry, capability_mask

F64 = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]

# Strategies cost / latency accept models within this much of the best quality.
QUALITY_TOLERANCE = 0.05
# Multi-objective: a 10x cost (or latency) difference is worth this much quality
# at weight 1.
DECADE_VALUE = 0.2


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


@dataclass(frozen=True, slots=True)
class PolicyResult:
    model: str
    fallbacks: tuple[str, ...]
    candidates: CandidateTable
    reason: str
    predicted_quality: float
    estimated_cost_usd: float
    estimated_latency_ms: float


Floats = list[float]


def _fmt_usd(x: float) -> str:
    return f"${x:.6f}" if x < 0.01 else f"${x:.4f}"


class Policy:
    """Scores, filters and orders the registry's models for one request."""

    def __init__(self, config: Config, registry: Registry,
                 learned: QualityModel | None = None) -> None:
        self.registry = registry
        self.routing = config.routing
        self.learned = learned
        # The learned router's model i answers as registry model learned_index[i].
        self.learned_index: list[int] = (
            [registry.index[m] for m in learned.models] if learned is not None else [])
        self._tiers = [(t.max_complexity, [registry.index[m] for m in t.models])
                       for t in config.routing.complexity_tiers]
        self._domains = {c: [registry.index[m] for m in ms]
                         for c, ms in config.routing.domains.items()}
        n = len(registry)
        self._prices = [(float(registry.price_in[i]), float(registry.price_out[i]))
                        for i in range(n)]
        self._speed = [(float(registry.p50_ms[i]), float(registry.tokens_per_s[i]))
                       for i in range(n)]
        self._limits = [(float(registry.context_window[i]), float(registry.max_output[i]))
                        for i in range(n)]
        self._caps = [int(m) for m in registry.cap_mask]

    # -- estimates -----------------------------------------------------------

    def _quality(self, cls: Classification) -> Floats:
        reg = self.registry
        if reg.categories:
            probs = cls.probs
            if probs is None:
                probs = np.array([cls.scores.get(c, 0.0) for c in reg.categories])
            total = float(probs.sum())
            base = (reg.quality @ (probs / total) if total > 0 else reg.default_quality).tolist()
        else:
            base = reg.default_quality.tolist()
        c = cls.complexity
        f = 0.1 + 3.0 * c * c
        q = [1.0 - (1.0 - x) * f for x in base]
        return [x if 0.0 <= x <= 1.0 else (0.0 if x < 0.0 else 1.0) for x in q]

    def _cost(self, input_tokens: int, output_tokens: int) -> Floats:
        return [input_tokens * pi + output_tokens * po for pi, po in self._prices]

    def _latency(self, input_tokens: int, output_tokens: int) -> Floats:
        # p50 is for a typical ~512-token answer; scale by the output length and
        # add prefill at ~20x the decode rate.
        out = []
        for p50, tps in self._speed:
            t = p50 + (output_tokens - 512) / tps * 1000.0
            floor = 0.2 * p50
            out.append((t if t > floor else floor) + input_tokens * 50.0 / tps)
        return out

    # -- constraints ---------------------------------------------------------

    def _reject(self, inp: PolicyInput, q: Floats, cost: Floats, lat: Floats,
                unhealthy: Mapping[str, str]) -> list[str]:
        """Each model's rejection reason ("" when eligible), first failing check wins."""
        reg, c = self.registry, inp.constraints
        it, ot = inp.input_tokens, inp.output_tokens
        need = capability_mask(c.required_capabilities) if c.required_capabilities else 0
        reasons = [""] * len(reg)
        for i, name in enumerate(reg.names):
            ctx, max_out = self._limits[i]
            if name in c.deny_models:
                reasons[i] = "denied by deny_models"
            elif c.allow_models and name not in c.allow_models:
                reasons[i] = "not in allow_models"
            elif need and (self._caps[i] & need) != need:
                missing = sorted(c.required_capabilities - reg.specs[name].capabilities)
                reasons[i] = f"lacks capability: {', '.join(missing)}"
            elif it + ot > ctx:
                reasons[i] = f"context: {it} prompt + {ot} output tokens > {int(ctx)} window"
            elif ot > max_out:
                reasons[i] = f"max output {ot} tokens > model limit {int(max_out)}"
            elif name in unhealthy:
                reasons[i] = f"unhealthy: {unhealthy[name]}"
            elif c.max_cost_usd is not None and cost[i] > c.max_cost_usd:
                reasons[i] = (f"estimated cost {_fmt_usd(cost[i])} > max_cost_usd "
                              f"{_fmt_usd(c.max_cost_usd)}")
            elif c.max_latency_ms is not None and lat[i] > c.max_latency_ms:
                reasons[i] = (f"estimated latency {lat[i]:.0f} ms > max_latency_ms "
                              f"{c.max_latency_ms:.0f}")
            elif c.min_quality is not None and q[i] < c.min_quality:
                reasons[i] = f"predicted quality {q[i]:.3f} < min_quality {c.min_quality:.3f}"
        return reasons

    # -- strategies: each returns a score per model (higher is better) --------

    def _score(self, inp: PolicyInput, q: Floats, cost: Floats, lat: Floats,
               ok: list[int]) -> tuple[Floats, str]:
        s = inp.strategy
        if s == "quality":
            top = max(max(cost[i] for i in ok), 1e-12)
            return [x - 1e-6 * c / top for x, c in zip(q, cost, strict=True)], (
                "highest predicted quality")
        if s in ("cost", "latency"):
            target = inp.constraints.min_quality
            if target is None:
                target = max(q[i] for i in ok) - QUALITY_TOLERANCE
            key = cost if s == "cost" else lat
            top = max(max(key[i] for i in ok), 1e-12)
            # Models meeting the target rank first, cheapest (fastest) first; the
            # rest follow by quality.
            rank = [2.0 - k / top if x >= target - 1e-12 else x
                    for x, k in zip(q, key, strict=True)]
            what = "cheapest" if s == "cost" else "fastest"
            return rank, f"{what} model with predicted quality >= {target:.3f}"
        if s == "complexity":
            return self._tier_score(inp.classification.complexity, q), (
                f"complexity tier for {inp.classification.complexity:.2f}")
        if s == "domain":
            return self._domain_score(inp, q, cost, lat, ok), (
                f"preferred for category {inp.classification.category}")
        return self._multi(inp.weights, q, cost, lat, ok), (
            f"best weighted score (quality {inp.weights.quality:g}, cost {inp.weights.cost:g}, "
            f"latency {inp.weights.latency:g})")

    def _multi(self, w: Weights, q: Floats, cost: Floats, lat: Floats, ok: list[int]) -> Floats:
        # Scores in log10 units relative to the cheapest / fastest eligible model;
        # the floors keep a free or instant model finite.
        log10 = math.log10
        lc = [log10(c if c > 1e-12 else 1e-12) for c in cost]
        ll = [log10(t if t > 1e-3 else 1e-3) for t in lat]
        cmin = min([lc[i] for i in ok])
        lmin = min([ll[i] for i in ok])
        wq, wc, wl = w.quality, w.cost * DECADE_VALUE, w.latency * DECADE_VALUE
        return [wq * x - wc * (c - cmin) - wl * (t - lmin) for x, c, t in zip(q, lc, ll, strict=True)]

    def _tier_score(self, complexity: float, q: Floats) -> Floats:
        score = list(q)  # models in no tier rank by quality, below every tier
        if not self._tiers:
            return score
        chosen = next((i for i, (mc, _) in enumerate(self._tiers) if complexity <= mc),
                      len(self._tiers) - 1)
        # The matching tier first, then higher tiers (safer), then lower ones.
        order = [chosen, *range(chosen + 1, len(self._tiers)), *range(chosen - 1, -1, -1)]
        for rank, t in enumerate(order):
            for pos, m in enumerate(self._tiers[t][1]):
                score[m] = max(score[m], 100.0 - 10.0 * rank - 0.01 * pos)
        return score

    def _domain_score(self, inp: PolicyInput, q: Floats, cost: Floats, lat: Floats,
                      ok: list[int]) -> Floats:
        score = self._multi(inp.weights, q, cost, lat, ok)
        prefs = self._domains.get(inp.classification.category) or self._domains.get("default", [])
        for pos, m in enumerate(prefs):
            score[m] = 100.0 - pos
        return score

    def _pareto_dominated(self, q: Floats, cost: Floats, lat: Floats,
                          ok: list[int]) -> dict[int, int]:
        """Eligible model -> an eligible model that dominates it on all three axes."""
        idx = np.array(ok)
        qq, cc, ll = np.array(q)[idx], np.array(cost)[idx], np.array(lat)[idx]
        ge = (qq[:, None] >= qq[None, :]) & (cc[:, None] <= cc[None, :]) & (ll[:, None] <= ll[None, :])
        gt = (qq[:, None] > qq[None, :]) | (cc[:, None] < cc[None, :]) | (ll[:, None] < ll[None, :])
        dom = ge & gt  # dom[a, b]: a dominates b
        out: dict[int, int] = {}
        for b in np.flatnonzero(dom.any(axis=0)):
            out[int(idx[b])] = int(idx[int(np.argmax(dom[:, b]))])
        return out

    # -- the decision --------------------------------------------------------

    def decide(self, inp: PolicyInput, unhealthy: Mapping[str, str] | None = None) -> PolicyResult:
        reg = self.registry
        q = self._quality(inp.classification)
        cost = self._cost(inp.input_tokens, inp.output_tokens)
        lat = self._latency(inp.input_tokens, inp.output_tokens)
        learned = self.learned if inp.strategy == "learned" else None
        if learned is not None:
            lq, lc = learned.predict(inp.text, inp.vec)
            for j, i in enumerate(self.learned_index):
                q[i], cost[i] = float(lq[j]), float(lc[j])
        reasons = self._reject(inp, q, cost, lat, unhealthy or {})
        if learned is not None:
            in_artifact = set(self.learned_index)
            for i in range(len(reg)):
                if i not in in_artifact and not reasons[i]:
                    reasons[i] = "not in the learned router's artifact"
        ok = [i for i, r in enumerate(reasons) if not r]
        if not ok:
            raise NoModelAvailable(dict(zip(reg.names, reasons, strict=True)))

        if learned is not None:
            li = self.learned_index
            elig = np.array([not reasons[i] for i in li], dtype=bool)
            pick = li[learned.choose(np.array([q[i] for i in li]), np.array([cost[i] for i in li]),
                                     inp.willingness_to_pay, elig)]
            score = list(q)
            score[pick] = 2.0  # above any quality: the learned router's choice
            strategy_note = f"learned router at willingness_to_pay {inp.willingness_to_pay:.3f}"
        else:
            score, strategy_note = self._score(inp, q, cost, lat, ok)
        ranked = sorted(ok, key=lambda i: -score[i])  # stable: ties keep registry order
        best = ranked[0]
        fallbacks = self._fallbacks(best, ranked, reasons)
        annotate = None
        if inp.strategy == "multi_objective":
            # With positive weights the weighted-sum winner is never dominated, so the
            # Pareto filter only explains the others: computed when candidates are read.
            def annotate(rs: list[str]) -> None:
                for b, a in self._pareto_dominated(q, cost, lat, ok).items():
                    if b != best:
                        rs[b] = f"pareto-dominated by {reg.names[a]}"

        candidates = CandidateTable(reg.names, reg.providers, q, cost, lat, score, reasons,
                                    annotate)
        cls = inp.classification
        runner = f"; runner-up {reg.names[ranked[1]]}" if len(ranked) > 1 else ""
        rejected = len(reg) - len(ok)
        reason = (f"{inp.strategy}: {strategy_note}; category {cls.category} "
                  f"(confidence {cls.confidence:.2f}), complexity {cls.complexity:.2f}; chose "
                  f"{reg.names[best]} (quality {q[best]:.3f}, {_fmt_usd(cost[best])}, "
                  f"{lat[best]:.0f} ms){runner}; {rejected} of {len(reg)} candidates fail the "
                  f"constraints")
        return PolicyResult(model=reg.names[best], fallbacks=fallbacks, candidates=candidates,
                            reason=reason, predicted_quality=q[best],
                            estimated_cost_usd=cost[best], estimated_latency_ms=lat[best])

    def _fallbacks(self, best: int, ranked: list[int], reasons: list[str]) -> tuple[str, ...]:
        """The chosen model's configured fallbacks that pass the constraints, then the
        next best candidates by score (Pareto-dominated ones may serve as fallbacks)."""
        reg = self.registry
        limit = self.routing.max_fallbacks
        out: list[str] = []
        for name in reg.specs[reg.names[best]].fallbacks:
            if not reasons[reg.index[name]] and name not in out:
                out.append(name)
        for i in ranked[1:]:
            if reg.names[i] not in out:
                out.append(reg.names[i])
        return tuple(out[:limit])
