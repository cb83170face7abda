"""The routing policy: constraints, strategies, and a decision that explains itself.

Every model is scored with vectorised numpy over the registry's column arrays.
Constraints reject (each rejected candidate says why); the strategy orders the
rest; the best is chosen and the next ones become fallbacks.

Predicted quality is the model's per-category quality, mixed by the
classifier's category probabilities, with its error rate scaled by
complexity: `1 - (1 - q) * (0.1 + 3 * complexity**2)`, clipped to [0, 1]. On
easy prompts cheap and strong models are close (0.6 -> 0.95 and 0.94 -> 0.99
at complexity 0.1); on hard ones the gap widens (0.6 -> 0.0 and 0.94 -> 0.85
at 0.9).
"""

from __future__ import annotations

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


def _fmt_usd(x: float) -> str:
    return f"${x:.6f}" if x < 0.01 else f"${x:.4f}"


class Policy:
    """Scores, filters and orders the registry's models for one request."""

    def __init__(self, config: Config, registry: Registry,
                 learned: QualityModel | None = None,
                 learned_map: Mapping[str, str] | None = None) -> None:
        self.registry = registry
        self.routing = config.routing
        self.learned = learned
        # Learned router's model i answers as registry model learned_index[i].
        self.learned_index: npt.NDArray[np.int64] | None = None
        if learned is not None:
            mapping = learned_map or {}
            self.learned_index = np.array(
                [registry.index[mapping.get(m, m)] for m in learned.models], dtype=np.int64)
        self._tiers = [(t.max_complexity, [registry.index[m] for m in t.models])
                       for t in config.routing.complexity_tiers]
        self._domains = {c: [registry.index[m] for m in ms]
                         for c, ms in config.routing.domains.items()}
        self._cat_index = {c: i for i, c in enumerate(registry.categories)}

    # -- estimates -----------------------------------------------------------

    def _quality(self, cls: Classification) -> F64:
        reg = self.registry
        if reg.categories:
            probs = cls.probs
            if probs is None:
                probs = np.array([cls.scores.get(c, 0.0) for c in reg.categories])
            total = probs.sum()
            q = reg.quality @ (probs / total) if total > 0 else reg.default_quality
        else:
            q = reg.default_quality
        c = cls.complexity
        return np.clip(1.0 - (1.0 - q) * (0.1 + 3.0 * c * c), 0.0, 1.0)

    def _cost(self, input_tokens: int, output_tokens: int) -> F64:
        reg = self.registry
        return input_tokens * reg.price_in + output_tokens * reg.price_out

    def _latency(self, input_tokens: int, output_tokens: int) -> F64:
        reg = self.registry
        # p50 is for a typical ~512-token answer; scale by the output length and
        # add prefill at ~20x the decode rate.
        decode = (output_tokens - 512) / reg.tokens_per_s * 1000.0
        prefill = input_tokens / (reg.tokens_per_s * 20.0) * 1000.0
        return np.maximum(0.2 * reg.p50_ms, reg.p50_ms + decode) + prefill

    # -- constraints ---------------------------------------------------------

    def _reject(self, inp: PolicyInput, q: F64, cost: F64, lat: F64,
                unhealthy: Mapping[str, str]) -> list[str]:
        """Each model's rejection reason ("" when eligible). The checks are vectorised;
        strings are built only for the models that fail one."""
        reg, c = self.registry, inp.constraints
        n = len(reg)
        total_ctx = inp.input_tokens + inp.output_tokens
        bad = (total_ctx > reg.context_window) | (inp.output_tokens > reg.max_output)
        if c.max_cost_usd is not None:
            bad |= cost > c.max_cost_usd
        if c.max_latency_ms is not None:
            bad |= lat > c.max_latency_ms
        if c.min_quality is not None:
            bad |= q < c.min_quality
        need = capability_mask(c.required_capabilities) if c.required_capabilities else 0
        if need:
            bad |= (reg.cap_mask & need) != need
        reasons = [""] * n
        if not (bad.any() or c.deny_models or c.allow_models or unhealthy):
            return reasons
        for i, name in enumerate(reg.names):
            if not bad[i] and name not in c.deny_models and name not in unhealthy and not (
                    c.allow_models and name not in c.allow_models):
                continue
            if name in c.deny_models:
                reasons[i] = "denied by deny_models"
            elif c.allow_models and name not in c.allow_models:
                reasons[i] = "not in allow_models"
            elif need and (int(reg.cap_mask[i]) & need) != need:
                missing = sorted(c.required_capabilities - reg.specs[name].capabilities)
                reasons[i] = f"lacks capability: {', '.join(missing)}"
            elif total_ctx > reg.context_window[i]:
                reasons[i] = (f"context: {inp.input_tokens} prompt + {inp.output_tokens} output "
                              f"tokens > {int(reg.context_window[i])} window")
            elif inp.output_tokens > reg.max_output[i]:
                reasons[i] = (f"max output {inp.output_tokens} tokens > model limit "
                              f"{int(reg.max_output[i])}")
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

    def _score(self, inp: PolicyInput, q: F64, cost: F64, lat: F64,
               ok: BoolArr) -> tuple[F64, str]:
        s = inp.strategy
        if s == "quality":
            return q - 1e-6 * cost / max(float(cost[ok].max()), 1e-12), "highest predicted quality"
        if s in ("cost", "latency"):
            target = inp.constraints.min_quality
            if target is None:
                target = float(q[ok].max()) - QUALITY_TOLERANCE
            meets = q >= target - 1e-12
            key = cost if s == "cost" else lat
            # Models meeting the target rank first, cheapest (fastest) first; the
            # rest follow by quality.
            rank = np.where(meets, 2.0 - key / max(float(key[ok].max()), 1e-12), q)
            what = "cheapest" if s == "cost" else "fastest"
            return rank, f"{what} model with predicted quality >= {target:.3f}"
        if s == "complexity":
            return self._tier_score(inp.classification.complexity, q), (
                f"complexity tier for {inp.classification.complexity:.2f}")
        if s == "domain":
            return self._domain_score(inp, q, cost, lat, ok), (
                f"preferred for category {inp.classification.category}")
        # multi_objective
        return self._multi(inp.weights, q, cost, lat, ok), (
            f"best weighted score (quality {inp.weights.quality:g}, cost {inp.weights.cost:g}, "
            f"latency {inp.weights.latency:g})")

    def _multi(self, w: Weights, q: F64, cost: F64, lat: F64, ok: BoolArr) -> F64:
        cmin = max(float(cost[ok].min()), 1e-12)
        lmin = max(float(lat[ok].min()), 1e-3)
        return (w.quality * q
                - w.cost * DECADE_VALUE * np.log10(np.maximum(cost, 1e-12) / cmin)
                - w.latency * DECADE_VALUE * np.log10(np.maximum(lat, 1e-3) / lmin))

    def _tier_score(self, complexity: float, q: F64) -> F64:
        score = q.copy()  # models in no tier rank by quality, below every tier
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

    def _domain_score(self, inp: PolicyInput, q: F64, cost: F64, lat: F64, ok: BoolArr) -> F64:
        base = self._multi(inp.weights, q, cost, lat, ok)
        prefs = self._domains.get(inp.classification.category) or self._domains.get("default", [])
        score = base.copy()
        for pos, m in enumerate(prefs):
            score[m] = 100.0 - pos
        return score

    def _pareto_dominated(self, q: F64, cost: F64, lat: F64, ok: BoolArr) -> dict[int, int]:
        """Eligible model -> an eligible model that dominates it on all three axes."""
        idx = np.flatnonzero(ok)
        qq, cc, ll = q[idx], cost[idx], lat[idx]
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
        if inp.strategy == "learned" and self.learned is not None and self.learned_index is not None:
            lq, lc = self.learned.predict(inp.text, inp.vec)
            q = self._quality(inp.classification)
            cost = self._cost(inp.input_tokens, inp.output_tokens)
            q[self.learned_index] = lq
            cost[self.learned_index] = lc
            in_artifact = np.zeros(len(reg), dtype=bool)
            in_artifact[self.learned_index] = True
        else:
            q = self._quality(inp.classification)
            cost = self._cost(inp.input_tokens, inp.output_tokens)
            in_artifact = None
        lat = self._latency(inp.input_tokens, inp.output_tokens)
        reasons = self._reject(inp, q, cost, lat, unhealthy or {})
        if in_artifact is not None:
            for i in np.flatnonzero(~in_artifact):
                reasons[i] = reasons[i] or "not in the learned router's artifact"
        ok = np.array([not r for r in reasons], dtype=bool)
        if not ok.any():
            raise NoModelAvailable(dict(zip(reg.names, reasons, strict=True)))

        if in_artifact is not None and self.learned is not None and self.learned_index is not None:
            elig = ok[self.learned_index]
            pick = int(self.learned_index[self.learned.choose(
                q[self.learned_index], cost[self.learned_index], inp.willingness_to_pay, elig)])
            score = q.copy()
            score[pick] = np.inf
            strategy_note = f"learned router at willingness_to_pay {inp.willingness_to_pay:.3f}"
        else:
            score, strategy_note = self._score(inp, q, cost, lat, ok)
        ranked = [int(i) for i in np.argsort(-np.where(ok, score, -np.inf), kind="stable")
                  if ok[i]]
        best = ranked[0]
        fallbacks = self._fallbacks(best, ranked, reasons)
        annotate = None
        if inp.strategy == "multi_objective":
            # With positive weights the weighted-sum winner is never dominated, so the
            # Pareto filter only explains the others: computed when candidates are read.
            def annotate(rs: list[str], ok: BoolArr = ok, best: int = best) -> None:
                for b, a in self._pareto_dominated(q, cost, lat, ok).items():
                    if b != best:
                        rs[b] = f"pareto-dominated by {reg.names[a]}"

        candidates = CandidateTable(reg.names, reg.providers, q, cost, lat,
                                    np.where(np.isfinite(score), score, 1.0), reasons, annotate)
        cls = inp.classification
        runner = (f"; runner-up {reg.names[ranked[1]]}" if len(ranked) > 1 else "")
        rejected = len(reg) - int(ok.sum())
        reason = (f"{inp.strategy}: {strategy_note}; category {cls.category} "
                  f"(confidence {cls.confidence:.2f}), complexity {cls.complexity:.2f}; chose "
                  f"{reg.names[best]} (quality {q[best]:.3f}, {_fmt_usd(float(cost[best]))}, "
                  f"{lat[best]:.0f} ms){runner}; {rejected} of {len(reg)} candidates fail the constraints")
        return PolicyResult(model=reg.names[best], fallbacks=fallbacks, candidates=candidates,
                            reason=reason, predicted_quality=float(q[best]),
                            estimated_cost_usd=float(cost[best]),
                            estimated_latency_ms=float(lat[best]))

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
