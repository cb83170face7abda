"""Load-aware model choice: a slow-down replayed against the same traffic, and its cost.

    python bench/load.py [--requests 3000] [--json]

1. Slow-down (virtual time, the built-in catalogue): one request every 0.5 s,
   each with `max_latency_ms` 2,500 and strategy cost. The model a priors-only router picks
   for them gets 6x slower for the middle third of the run (500 s at the
   default 3,000 requests: 8 half-lives), then recovers. Two
   routers decide every request: one with the registry's priors only (as
   before), one load-aware, fed through `state/observed.py` (memory backend) with
   the latency of each call it made, as Complete feeds it. A call's latency is
   drawn from a lognormal with the model's (current) p50 and p95 for the
   request's tokens. Reported: the share of requests whose call missed its
   `max_latency_ms`, with and without load awareness, overall and during the
   slow-down, and how often the load-aware router still tried the slow model
   (probes as its observations decay).
2. Decision overhead, in this process, alternating rounds of `Router.route`:
   as before (the output length fixed at the default, no load source), with the
   output-length estimate, and with both and an observed snapshot attached
   (every model observed, two at a limit); the output-length estimate alone per
   ask; and the per-snapshot work off the decision path (rebuild, view).
Numbers, not assertions: this machine is noisy, so compare within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from typing import Any

from complete import pct  # bench/complete.py's (the script's folder is on sys.path)

from routecore import Constraints, Router
from routecore.config import load_config
from routecore.domain import LoadSnapshot, ModelLoad
from routecore.routing.load import LoadView
from routecore.routing.output_length import OutputEstimate
from routecore.state.backend import MemoryBackend
from routecore.state.observed import ObservedConfig, open_observed

ASKS = [
    "What is the capital of Australia?", "Explain how a hash map handles collisions.",
    "Give me a recipe for a quick vegetarian dinner.", "Why is the sky blue?",
    "Translate 'good morning' into Spanish.", "What does HTTP 429 mean?",
    "Suggest a name for a bakery.", "How do vaccines train the immune system?",
    "What is the difference between a list and a tuple in Python?",
    "Recommend a book about the history of mathematics.",
]
CUED = ["Write a 5,000-word story about a lighthouse keeper", "Answer in one word: is ice cold?",
        "List 20 ideas for a team offsite", "Write a haiku about autumn rain"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _draw(rng: random.Random, p50: float, p95: float) -> float:
    sigma = math.log(max(p95, p50 * 1.0001) / p50) / 1.645
    return rng.lognormvariate(math.log(p50), sigma)


def _estimates(router: Router, model: str, out_tokens: int, in_tokens: int,
               slow: float) -> tuple[float, float]:
    """The model's true p50 and p95 for one call (the registry's, times `slow`)."""
    spec = router.registry.specs[model]
    tps = spec.latency.tokens_per_s
    out = []
    for p in (spec.latency.p50_ms * slow, spec.latency.p95_ms * slow):
        out.append(max(p + (out_tokens - 512) / tps * 1000, 0.2 * p) + in_tokens * 50 / tps)
    return out[0], out[1]


def slowdown(n: int, seed: int) -> dict[str, Any]:
    cfg = load_config(None)
    plain = Router.from_config(cfg)
    aware = Router.from_config(cfg)
    clock = Clock()
    obs = open_observed(MemoryBackend(clock=clock),
                        ObservedConfig(half_life_s=aware.load_config.half_life_s,
                                       refresh_s=aware.load_config.refresh_s),
                        list(aware.registry.names), {})
    aware.load_source = obs.snapshot
    limit = 2500  # a common interactive SLO; several models fit it by their priors
    c = Constraints(max_latency_ms=limit)
    victim = plain.route(ASKS[0], strategy="cost", constraints=c).model
    rng = random.Random(seed)
    phases = {"before": (0, n // 3), "slow": (n // 3, 2 * n // 3), "after": (2 * n // 3, n)}
    miss = {k: {"plain": 0, "aware": 0, "n": 0, "aware_tried_slow": 0} for k in phases}
    for i in range(n):
        clock.now += 0.5
        phase = next(k for k, (a, b) in phases.items() if a <= i < b)
        ask = ASKS[rng.randrange(len(ASKS))]
        draws = rng.random()
        m = miss[phase]
        m["n"] += 1
        for name, router in (("plain", plain), ("aware", aware)):
            d = router.route(ask, strategy="cost", constraints=c)
            slow = 6.0 if phase == "slow" and d.model == victim else 1.0
            p50, p95 = _estimates(router, d.model, d.output_tokens, d.input_tokens, slow)
            ms = _draw(random.Random(f"{seed}:{i}:{draws}"), p50, p95)
            if ms > limit:
                m[name] += 1
            if router is aware:
                obs.observe(d.model, ms)  # what Complete records for the call it made
                if phase == "slow" and d.model == victim:
                    m["aware_tried_slow"] += 1
    total = {k: sum(m[k] for m in miss.values()) for k in ("plain", "aware", "n")}
    return {
        "victim": victim, "max_latency_ms": limit, "requests": n,
        "half_life_s": aware.load_config.half_life_s, "slowdown": "6x for the middle third",
        "missed_share": {
            "overall": {"priors_only": total["plain"] / total["n"],
                        "load_aware": total["aware"] / total["n"]},
            **{k: {"priors_only": m["plain"] / m["n"], "load_aware": m["aware"] / m["n"],
                   "load_aware_calls_to_slow_model": m["aware_tried_slow"]}
               for k, m in miss.items()},
        },
    }


def overhead(rounds: int, per_round: int) -> dict[str, Any]:
    cfg = load_config(None)
    router = Router.from_config(cfg)
    names = router.registry.names
    models = {n: ModelLoad(calls=20.0, p50_ms=900.0, p95_ms=2500.0, in_flight=1)
              for n in names}
    models[names[0]] = ModelLoad(rpm_left=0.0, rpm=60)
    models[names[1]] = ModelLoad(tpm_left=100.0, tpm=100_000)
    snap = LoadSnapshot(1, 0.0, models)
    asks = ASKS + CUED
    for a in asks:
        router.route(a)
    real = router.output_length.estimate
    default = OutputEstimate(router.config.routing.default_output_tokens, "default")

    def fixed(ask: str, input_tokens: int, max_output_tokens: int | None = None
              ) -> OutputEstimate:
        return default  # what routing did before: the configured default

    # Three variants, alternating rounds: as before (no estimate, no load), with the
    # output estimate, with both (every model observed, two at a limit).
    variants: dict[str, list[float]] = {"before": [], "estimate": [], "estimate_load": []}
    for _ in range(rounds):
        for name, sink in variants.items():
            router.output_length.estimate = real if name != "before" else fixed  # type: ignore[method-assign]
            router.load_source = (lambda: snap) if name == "estimate_load" else None
            for j in range(per_round):
                a = asks[j % len(asks)]
                t0 = time.perf_counter_ns()
                router.route(a)
                sink.append((time.perf_counter_ns() - t0) / 1000)
    router.output_length.estimate = real  # type: ignore[method-assign]
    router.load_source = None
    est: dict[str, list[float]] = {"plain": [], "cued": []}
    for kind, group in (("plain", ASKS), ("cued", CUED)):
        for j in range(rounds * per_round):
            a = group[j % len(group)]
            t0 = time.perf_counter_ns()
            router.output_length.estimate(a, 20)
            est[kind].append((time.perf_counter_ns() - t0) / 1000)
    clock = Clock()
    obs = open_observed(MemoryBackend(clock=clock), ObservedConfig(), list(names), {})
    for i in range(2000):
        obs.observe(names[i % len(names)], 100.0 + i)
    t0 = time.perf_counter_ns()
    for _ in range(50):
        clock.now += 1.0
        obs.snapshot()
    rebuild = (time.perf_counter_ns() - t0) / 50_000
    t0 = time.perf_counter_ns()
    for _ in range(50):
        LoadView(snap, router.registry, router.load_config)
    view = (time.perf_counter_ns() - t0) / 50_000

    def s(xs: list[float]) -> dict[str, float]:
        return {"p50_us": round(pct(xs, 0.5), 2), "p99_us": round(pct(xs, 0.99), 2),
                "mean_us": round(statistics.fmean(xs), 2)}
    base = pct(variants["before"], 0.5)
    return {"route": {k: s(v) for k, v in variants.items()},
            "added_p50_us": {k: round(pct(v, 0.5) - base, 2) for k, v in variants.items()
                             if k != "before"},
            "output_estimate_plain_ask": s(est["plain"]),
            "output_estimate_cued_ask": s(est["cued"]),
            "per_snapshot_off_path_us": {"rebuild_25_models": round(rebuild, 1),
                                         "view_25_models": round(view, 1)}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--per-round", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    ns = ap.parse_args()
    out = {"slowdown": slowdown(ns.requests, ns.seed),
           "overhead": overhead(ns.rounds, ns.per_round)}
    if ns.json:
        print(json.dumps(out, indent=2))
        return
    sd = out["slowdown"]
    print(f"slow-down: {sd['victim']} 6x slower for the middle third of {sd['requests']} "
          f"requests, max_latency_ms {sd['max_latency_ms']}, half-life {sd['half_life_s']} s")
    for k, v in sd["missed_share"].items():
        extra = (f"  (load-aware calls to the slow model: {v['load_aware_calls_to_slow_model']})"
                 if "load_aware_calls_to_slow_model" in v else "")
        print(f"  missed the constraint, {k:8s}: priors only {v['priors_only']:6.1%}   "
              f"load-aware {v['load_aware']:6.1%}{extra}")
    ov = out["overhead"]
    for k, v in ov["route"].items():
        print(f"Route in process, {k:14s}: p50 {v['p50_us']:8.2f} us  p99 {v['p99_us']:9.2f} us")
    print(f"added p50 against before: {ov['added_p50_us']}")
    print(f"output-length estimate p50: plain ask {ov['output_estimate_plain_ask']['p50_us']} us,"
          f" ask with a length cue {ov['output_estimate_cued_ask']['p50_us']} us")
    print(f"off the decision path, once per snapshot: {ov['per_snapshot_off_path_us']}")


if __name__ == "__main__":
    main()
