"""Prometheus metrics, fed from audit records by the recorder's writer (never on
the request path), plus four live gauges over a sliding window.

The live gauges, and what each is computed from:
- `routecore_routing_accuracy`: of the requests given feedback or judged by
  shadow evaluation in the window, the share where the chosen model was the
  best acceptable one: its feedback score (or judged score) reached
  `metrics.acceptable_score` and no cheaper candidate that the policy did not
  reject was predicted to reach it (shadow: the shadow answer, if cheaper, did
  not reach it). With feedback the counterfactual side is the router's own
  prediction (estimated); with shadow evaluation both sides are observed.
- `routecore_cost_efficiency`: spend over what the same requests would have cost
  on `metrics.reference_model`: Complete/CompleteStream at the tokens really
  used, priced at the reference model's price (observed); Route at the
  decision's estimates for the chosen and the reference candidate (estimated).
  0.3 means the traffic cost 30% of sending it all to the reference model.
- `routecore_quality_parity`: routed quality over the reference model's. While
  shadow evaluations (calling/shadow.py) were judged in the window: the summed
  judged scores of the routed answers over those of the shadow answers
  (observed; the shadow model is the reference). Otherwise: predicted quality
  of the chosen models over the reference model's registry quality for the
  same categories (estimated).

Shadow evaluations (records with rpc "Shadow") are kept apart: their spend goes
to `routecore_shadow_cost_usd_total{model}` (never `routecore_cost_usd_total`),
their results to `routecore_shadow_outcomes_total{result}`, and runs not made to
`routecore_shadow_dropped_total{reason}`; they are not requests.
- `routecore_latency_overhead_seconds`: mean time spent in routecore per
  Route/Complete, the RPC's duration minus its upstream attempts (observed).

Label sets are bounded: models outside the config become "other", tenants
beyond `metrics.max_tenants` distinct values become "other".
With `--workers` the values live in prometheus-client's multiprocess files;
live gauges use "livemostrecent" (the newest worker's window), breaker state
"livemax" (open anywhere shows open).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Final

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from routecore.config import Config
from routecore.observe.record import DECISION_RPCS, AuditRecord, CandidateColumns, Candidates
from routecore.observe.settings import MetricsSettings
from routecore.observe.shadow import SHADOW_RPC
from routecore.observe.window import Window

BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
DECISION_BUCKETS = (10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 0.01, 0.05)
RPC_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
               2.5, 5.0, 10.0, 30.0)
RECENT = 100_000  # decisions remembered for the feedback that may follow
OTHER = "other"
CACHE_OUTCOMES = frozenset({"exact", "semantic", "miss", "refresh", "bypass", "skip"})
SHADOW_DROPS = ("queue_full", "cap", "state_unavailable", "caller_not_allowed")


class _Observations:
    """One batch's histogram observations, applied per histogram at the end: one increment
    per bucket touched instead of one locked update per observation. Uses the client's
    bucket fields when present (prometheus-client 0.20 to 0.26), else plain observe()."""

    def __init__(self) -> None:
        self._by: dict[int, tuple[Any, list[float]]] = {}

    def add(self, child: Any, value: float) -> None:
        entry = self._by.get(id(child))
        if entry is None:
            entry = self._by[id(child)] = (child, [])
        entry[1].append(value)

    def apply(self) -> None:
        for child, values in self._by.values():
            bounds = getattr(child, "_upper_bounds", None)
            buckets = getattr(child, "_buckets", None)
            total = getattr(child, "_sum", None)
            if bounds is None or buckets is None or total is None:
                for v in values:
                    child.observe(v)
                continue
            counts = [0] * len(bounds)
            for v in values:
                counts[bisect_left(bounds, v)] += 1  # the first bucket with le >= v
            total.inc(sum(values))
            for i, n in enumerate(counts):
                if n:
                    buckets[i].inc(n)


class Metrics:
    """The process's metric objects, created once. `registry` is None in multiprocess
    mode (values go to the multiprocess directory, a MultiProcessCollector reads them)."""

    def __init__(self, settings: MetricsSettings, config: Config,
                 registry: CollectorRegistry | None) -> None:
        self.settings = settings
        self.registry = registry
        self._models = frozenset(config.models)
        ref = config.models[settings.reference_model]
        self._ref_name = ref.name
        self._ref_pos = 0
        self._ref_price = (ref.price.input / 1e6, ref.price.output / 1e6)
        self._ref_quality = {c: ref.quality_for(c) for c in (*config.categories, "default")}
        self._tenants: set[str] = set()
        self._children: dict[tuple[Any, ...], Any] = {}
        self._recent: OrderedDict[str, tuple[str, bool]] = OrderedDict()
        w = settings.window_s
        self._accuracy, self._cost, self._quality, self._overhead = (
            Window(w), Window(w), Window(w), Window(w))
        self._judged = Window(w)  # (routed score, shadow score) of judged shadow evaluations
        r = registry
        self.requests = Counter("routecore_requests", "RPCs by method and gRPC status",
                                ["rpc", "status"], registry=r)
        self.decision = Histogram("routecore_decision_seconds", "Routing decision time",
                                  buckets=DECISION_BUCKETS, registry=r)
        self.rpc = Histogram("routecore_rpc_seconds", "RPC duration", ["rpc"],
                             buckets=RPC_BUCKETS, registry=r)
        self.upstream = Histogram("routecore_upstream_seconds", "Upstream attempt duration",
                                  ["model"], buckets=RPC_BUCKETS, registry=r)
        self.attempts = Counter("routecore_attempts", "Upstream attempts by outcome "
                                "(ok or the error kind)", ["model", "outcome"], registry=r)
        self.tokens = Counter("routecore_tokens", "Tokens sent to and received from models, "
                              "and input tokens prompt compression saved (direction saved)",
                              ["model", "direction"], registry=r)
        self.cost = Counter("routecore_cost_usd", "Spend at registry prices",
                            ["model", "tenant"], registry=r)
        self.breaker = Gauge("routecore_breaker_state", "Worst breaker state of a model's "
                             "deployments: 0 closed, 1 half-open, 2 open", ["model"],
                             registry=r, multiprocess_mode="livemax")
        self.budget = Gauge("routecore_budget_used_ratio", "Share of the tenant's budget spent",
                            ["tenant"], registry=r, multiprocess_mode="livemax")
        self.cache = Counter("routecore_cache_requests", "Complete calls by response-cache "
                             "outcome (exact, semantic, miss, refresh, bypass, skip)",
                             ["outcome"], registry=r)
        self.cache_saved = Counter("routecore_cache_saved_usd", "What cache hits would have "
                                   "cost (their answers' original cost)", ["model", "tenant"],
                                   registry=r)
        self.classifier = Counter("routecore_classifier", "LLM-classifier outcomes "
                                  "(classifier.mode llm/cascade): local, llm, cache, fallback",
                                  ["source"], registry=r)
        self.dropped = Counter("routecore_audit_dropped", "Audit records lost: queue full or "
                               "write failed", ["reason"], registry=r)
        live: Final = "livemostrecent"
        self.routing_accuracy = Gauge("routecore_routing_accuracy", "Share of fed-back requests "
                                      "routed to the cheapest acceptable model (window)",
                                      registry=r, multiprocess_mode=live)
        self.cost_efficiency = Gauge("routecore_cost_efficiency", "Spend over the same traffic "
                                     f"on the reference model {self._ref_name} (window)",
                                     registry=r, multiprocess_mode=live)
        self.quality_parity = Gauge("routecore_quality_parity", "Routed quality over the "
                                    "reference model's: judged by shadow evaluation when it "
                                    "ran in the window, else predicted", registry=r,
                                    multiprocess_mode=live)
        self.latency_overhead = Gauge("routecore_latency_overhead_seconds", "Mean time in "
                                      "routecore per request, upstream excluded (window)",
                                      registry=r, multiprocess_mode=live)
        self.shadow_cost = Counter("routecore_shadow_cost_usd", "Shadow evaluation spend "
                                   "(shadow answers and judge calls), never billed to callers",
                                   ["model"], registry=r)
        self.shadow_outcomes = Counter("routecore_shadow_outcomes", "Shadow evaluations by "
                                       "result: which answer scored higher (routed, shadow, "
                                       "tie) or error", ["result"], registry=r)
        self.shadow_dropped = Counter("routecore_shadow_dropped", "Sampled shadow evaluations "
                                      "not run: queue full, daily cap reached, state backend "
                                      "down, the caller's allow list excludes the model",
                                      ["reason"], registry=r)
        for reason in ("queue_full", "write_failed"):
            self.dropped.labels(reason)  # exported at 0 from the start
        for reason in SHADOW_DROPS:
            self.shadow_dropped.labels(reason)

    # -- labels -----------------------------------------------------------------

    def _model(self, name: str) -> str:
        return name if name in self._models else OTHER

    def _tenant(self, name: str) -> str:
        if name in self._tenants:
            return name
        if len(self._tenants) < self.settings.max_tenants:
            self._tenants.add(name)
            return name
        return OTHER

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- feeding ------------------------------------------------------------------

    def observe(self, records: Iterable[AuditRecord]) -> None:
        """Count a batch of records and refresh the live gauges (the writer thread).
        Counters and window sums are summed over the batch first: one update each."""
        incs: dict[tuple[Any, ...], float] = defaultdict(float)
        obs = _Observations()
        sums = [0.0] * 6  # cost, reference cost, quality, reference quality, overhead, n
        last = 0.0
        for rec in records:
            self._one(rec, incs, obs, sums)
            last = rec.ts
        for (metric, *labels), n in incs.items():
            self._child(metric, *labels).inc(n)
        obs.apply()
        if sums[5] or sums[1] or sums[3]:
            self._cost.add(last, sums[0], sums[1])
            self._quality.add(last, sums[2], sums[3])
            self._overhead.add(last, sums[4], sums[5])
        self.refresh(time.time())

    def _one(self, rec: AuditRecord, incs: dict[tuple[Any, ...], float], obs: _Observations,
             sums: list[float]) -> None:
        if rec.rpc == SHADOW_RPC:
            self._attempts(rec, incs, obs)  # real upstream calls, counted as such
            self._shadow(rec, incs)
            return
        incs[(self.requests, rec.rpc, rec.status)] += 1  # RouteBatch: one per item
        if rec.rpc == "CompleteBatch":
            pass  # an item's latency is its job's hours upstream, not an RPC's time
        elif rec.rpc != "RouteBatch" or rec.features.get("batch", {}).get("index") == 0:
            obs.add(self._child(self.rpc, rec.rpc), rec.latency_ms / 1000.0)  # once per call
        if rec.decision_us:
            obs.add(self.decision, rec.decision_us / 1e6)
        self._attempts(rec, incs, obs)
        if rec.rpc == "Feedback":
            self._feedback(rec)
            return
        cls = rec.features.get("classifier")
        if cls is not None:  # the classifying call is spend too, under its own model
            incs[(self.classifier, str(cls["source"]))] += 1
            if cls["cost_usd"]:
                incs[(self.cost, self._model(str(cls["model"])), self._tenant(rec.tenant))] += \
                    float(cls["cost_usd"])
        if rec.status != "OK":
            return
        served = self._model(rec.served_model or rec.model)
        if rec.input_tokens and rec.served_model:
            incs[(self.tokens, served, "input")] += rec.input_tokens
        if rec.output_tokens:
            incs[(self.tokens, served, "output")] += rec.output_tokens
        squeezed = rec.features.get("compress")
        if squeezed:  # input tokens prompt compression kept from being sent (or estimated)
            incs[(self.tokens, served, "saved")] += squeezed["tokens_saved"]
        if rec.cost_usd:
            incs[(self.cost, served, self._tenant(rec.tenant))] += rec.cost_usd
        if rec.cache:
            incs[(self.cache, rec.cache if rec.cache in CACHE_OUTCOMES else OTHER)] += 1
            saved = rec.features.get("cache_saved_usd")
            if saved:
                incs[(self.cache_saved, served, self._tenant(rec.tenant))] += float(saved)
        self._live(rec, sums)

    def _attempts(self, rec: AuditRecord, incs: dict[tuple[Any, ...], float],
                  obs: _Observations) -> None:
        for model, _dep, _prov, outcome, ms, _retry, _err in rec.attempts:
            m = self._model(model)
            incs[(self.attempts, m, outcome)] += 1
            obs.add(self._child(self.upstream, m), ms / 1000.0)

    def _shadow(self, rec: AuditRecord, incs: dict[tuple[Any, ...], float]) -> None:
        """A shadow evaluation: its spend and result apart, its scores into the judged
        parity window and routing accuracy."""
        s = rec.shadow
        incs[(self.shadow_outcomes, s.get("winner") or "error")] += 1
        for key, model in (("shadow_cost_usd", rec.served_model),
                           ("judge_cost_usd", str(s.get("judge_model", "")))):
            usd = float(s.get(key) or 0.0)
            if usd:
                incs[(self.shadow_cost, self._model(model))] += usd
        routed, shadow = s.get("routed_score"), s.get("shadow_score")
        if routed is None or shadow is None:
            return
        self._judged.add(rec.ts, float(routed), float(shadow))
        ok = self.settings.acceptable_score
        cheaper = shadow >= ok and float(s.get("shadow_cost_usd") or 0.0) < \
            float(s.get("routed_cost_usd") or 0.0)
        self._accuracy.add(rec.ts, 1.0 if routed >= ok and not cheaper else 0.0)

    def _live(self, rec: AuditRecord, sums: list[float]) -> None:
        if rec.rpc in DECISION_RPCS:
            ref = self._ref_cost(rec.candidates)
            if ref is not None:
                sums[0] += rec.estimated_cost_usd
                sums[1] += ref
        else:
            pin, pout = self._ref_price
            sums[0] += rec.cost_usd
            sums[1] += rec.input_tokens * pin + rec.output_tokens * pout
        if rec.model:
            sums[2] += rec.predicted_quality
            sums[3] += self._ref_quality.get(rec.category, self._ref_quality["default"])
            self._remember(rec)
        if rec.rpc == "RouteBatch":  # the call's time is shared: count each item's own
            sums[4] += rec.decision_us / 1e6
            sums[5] += 1
        elif rec.rpc not in ("CompleteStream", "CompleteBatch"):
            sums[4] += max(0.0, rec.latency_ms - rec.upstream_ms) / 1000.0
            sums[5] += 1

    def _ref_cost(self, cands: Candidates) -> float | None:
        """The reference model's estimated cost among a decision's candidates (they come in
        registry order, so its position is remembered)."""
        pos = self._ref_pos
        if isinstance(cands, CandidateColumns):
            models = cands.models
            if not (pos < len(models) and models[pos] == self._ref_name):
                if self._ref_name not in models:
                    return None
                pos = self._ref_pos = list(models).index(self._ref_name)
            return float(cands.numbers[1, pos])
        if pos < len(cands) and cands[pos][0] == self._ref_name:
            return cands[pos][3]
        for i, c in enumerate(cands):
            if c[0] == self._ref_name:
                self._ref_pos = i
                return c[3]
        return None

    def _remember(self, rec: AuditRecord) -> None:
        """The decision, for feedback: its model and whether a cheaper candidate
        was predicted acceptable."""
        ok = self.settings.acceptable_score
        chosen_cost = rec.estimated_cost_usd
        cands = rec.candidates
        if isinstance(cands, CandidateColumns):
            q, c = cands.numbers[0], cands.numbers[1]
            rejected = cands.rejected
            cheaper = any(not rejected[i]
                          for i in np.flatnonzero((q >= ok) & (c < chosen_cost)).tolist())
        else:
            cheaper = any(not rej and q >= ok and c < chosen_cost
                          for _m, _p, q, c, _lat, _s, rej in cands)
        recent = self._recent
        recent[rec.request_id] = (rec.model, cheaper)
        if len(recent) > RECENT:
            recent.popitem(last=False)

    def _feedback(self, rec: AuditRecord) -> None:
        if rec.status != "OK":
            return
        ref_id = str(rec.feedback.get("ref_request_id", ""))
        seen = self._recent.get(ref_id)
        if seen is None or seen[0] != rec.model:
            return  # feedback on a request this process did not route, or on another model
        score = float(rec.feedback.get("score", 0.0))
        accurate = score >= self.settings.acceptable_score and not seen[1]
        self._accuracy.add(rec.ts, 1.0 if accurate else 0.0)

    def refresh(self, now: float) -> None:
        for window, gauge in ((self._accuracy, self.routing_accuracy),
                              (self._cost, self.cost_efficiency),
                              (self._overhead, self.latency_overhead)):
            window.expire(now)
            value = window.ratio()
            gauge.set(value if value is not None else float("nan"))
        self._judged.expire(now)
        self._quality.expire(now)
        parity = self._judged.ratio()  # observed, when shadow evaluation ran in the window
        if parity is None:
            parity = self._quality.ratio()
        self.quality_parity.set(parity if parity is not None else float("nan"))

    def set_breakers(self, states: Mapping[str, str]) -> None:
        """Breaker state per model ("closed", "half_open", "open")."""
        for model, state in states.items():
            self._child(self.breaker, self._model(model)).set(BREAKER_VALUES.get(state, 0.0))

    def tenants(self) -> list[str]:
        """Tenants with a label value so far (a copy: the writer thread adds to it)."""
        return list(self._tenants)

    def set_budget(self, tenant: str, share_used: float) -> None:
        self._child(self.budget, self._tenant(tenant)).set(share_used)

    def add_dropped(self, reason: str, n: int) -> None:
        self._child(self.dropped, reason).inc(n)

    def add_shadow_dropped(self, reason: str, n: int) -> None:
        self._child(self.shadow_dropped, reason).inc(n)
