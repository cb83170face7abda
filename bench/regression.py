"""Benchmark the quality regression detector: detection delay and false alarms.

    python bench/regression.py [--json] [--seeds 20] [--stable 20000] [--threshold 16]

1. False alarms: for each signal shape (normal-ish scores around 0.8 and 0.5,
   binary thumbs up at 0.8 and 0.5, an error flag at 2%), `--seeds` streams of
   `--stable` stable signals each; reported: alarms per shape and in all, for the
   settings and, in the same run, for `--compare-threshold` (default 12: the
   textbook choice the default 16 is measured against).
2. Detection delay: a stream's baseline, 300 stable signals, then a drop;
   reported: signals after the drop until the alarm (median, p90, max over the
   seeds) and how many streams alarmed within 5,000 signals, per drop size.
3. Cost: microseconds per signal through `Detector.observe` (the lock, the
   stream lookup and the update), and through `feed` for Complete records.

Everything runs in this process on the shipped defaults unless overridden; no
timed assertions, compare within a run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import time
from collections.abc import Callable

from routecore.config import Config, load_config
from routecore.observe.record import AuditRecord
from routecore.observe.regression import Alarm, AlertSettings, Detector

Gen = Callable[[random.Random], float]


def normal(mu: float, sd: float) -> Gen:
    return lambda r: min(1.0, max(0.0, r.gauss(mu, sd)))


def binary(p: float) -> Gen:
    return lambda r: 1.0 if r.random() < p else 0.0


STABLE = {"score N(0.8, 0.15)": normal(0.8, 0.15), "score N(0.5, 0.3)": normal(0.5, 0.3),
          "thumbs up 80%": binary(0.8), "thumbs up 50%": binary(0.5),
          "answered 98%": binary(0.98)}
DROPS = {"score 0.80 -> 0.70 (0.67 sd)": (normal(0.8, 0.15), normal(0.7, 0.15)),
         "score 0.80 -> 0.65 (1 sd)": (normal(0.8, 0.15), normal(0.65, 0.15)),
         "score 0.80 -> 0.50 (2 sd)": (normal(0.8, 0.15), normal(0.5, 0.15)),
         "thumbs up 80% -> 50%": (binary(0.8), binary(0.5)),
         "thumbs up 80% -> 0% (refusals)": (binary(0.8), binary(0.0)),
         "answered 99% -> 0% (error_500)": (binary(0.99), binary(0.0))}
PRE = 300
AFTER = 5000


def run(config: Config, settings: AlertSettings, before: Gen, after: Gen, n_before: int, n_after: int,
        seed: int) -> tuple[str, int] | None:
    """("before"|"after", signals until the alarm) or None."""
    rng = random.Random(seed)
    fired: list[Alarm] = []
    d = Detector(settings, config, on_alarm=fired.append)
    for phase, gen, n in (("before", before, n_before), ("after", after, n_after)):
        for i in range(n):
            d.observe(model="gpt-4o", version="2024-08-06", router_version="v",
                      category="code", kind="feedback", value=gen(rng))
            if fired:
                return phase, i + 1
    return None


def cost(config: Config, settings: AlertSettings) -> dict[str, float]:
    d = Detector(settings, config)
    rng = random.Random(0)
    values = [rng.random() for _ in range(50_000)]
    t0 = time.perf_counter()
    for i, v in enumerate(values):
        d.observe(model="gpt-4o", version="2024-08-06", router_version="v",
                  category=("code", "math", "chat")[i % 3], kind="feedback", value=v)
    observe_us = (time.perf_counter() - t0) / len(values) * 1e6
    recs = [AuditRecord(ts=0.0, request_id=f"r{i}", rpc="Complete", status="OK",
                        model="gpt-4o", model_version="2024-08-06", category="code",
                        router_version="v",
                        attempts=[("gpt-4o", "openai/gpt-4o-2024-08-06", "openai", "ok", 1.0, 0,
                                   "")]) for i in range(20_000)]
    t0 = time.perf_counter()
    d.feed(recs)
    feed_us = (time.perf_counter() - t0) / len(recs) * 1e6
    return {"observe_us": round(observe_us, 2), "feed_complete_record_us": round(feed_us, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--stable", type=int, default=20_000)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--drift", type=float, default=None)
    ap.add_argument("--baseline", type=int, default=None)
    ap.add_argument("--compare-threshold", type=float, default=12.0)
    ns = ap.parse_args()
    config = load_config(None)
    settings = AlertSettings()
    for name in ("threshold", "drift", "baseline"):
        if getattr(ns, name) is not None:
            settings = dataclasses.replace(settings, **{name: getattr(ns, name)})
    def count(st: AlertSettings) -> dict[str, int]:
        return {name: sum(1 for s in range(ns.seeds)
                          if run(config, st, gen, gen, ns.stable, 0, s) is not None)
                for name, gen in STABLE.items()}

    false_alarms = count(settings)
    compare = count(dataclasses.replace(settings, threshold=ns.compare_threshold))
    delays: dict[str, dict[str, float]] = {}
    for name, (before, after) in DROPS.items():
        found = [run(config, settings, before, after, PRE, AFTER, s) for s in range(ns.seeds)]
        after_drop = sorted(r[1] for r in found if r is not None and r[0] == "after")
        delays[name] = {
            "alarmed": len(after_drop), "streams": ns.seeds,
            "early": sum(1 for r in found if r is not None and r[0] == "before"),
            "median": statistics.median(after_drop) if after_drop else float("nan"),
            # interpolated like the median: a lower nearest rank put p90 under the median at 2 seeds
            "p90": (statistics.quantiles(after_drop, n=10, method="inclusive")[-1] if len(after_drop) > 1
                    else after_drop[0] if after_drop else float("nan")),
            "max": after_drop[-1] if after_drop else float("nan")}
    out = {"settings": dataclasses.asdict(settings),
           "false_alarms": {"by_shape": false_alarms, "total": sum(false_alarms.values()),
                            "stable_signals": ns.seeds * ns.stable * len(STABLE),
                            f"at_threshold_{ns.compare_threshold:g}": compare},
           "detection_delay_signals": delays, "cost": cost(config, settings)}
    if ns.json:
        print(json.dumps(out, indent=2))
        return
    fa = out["false_alarms"]
    print(f"false alarms: {fa['total']} over {fa['stable_signals']:,} stable signals "
          f"({ns.seeds} seeds x {ns.stable:,} x {len(STABLE)} shapes): {false_alarms}")
    print(f"  the same streams at threshold {ns.compare_threshold:g}: "
          f"{sum(compare.values())} ({compare})")
    print(f"{'drop':34} {'alarmed':>8} {'median':>7} {'p90':>6} {'max':>6}")
    for name, d in delays.items():
        print(f"{name:34} {d['alarmed']:>3}/{d['streams']:<4} {d['median']:7.0f} "
              f"{d['p90']:6.0f} {d['max']:6.0f}")
    print(f"cost: {out['cost']}")


if __name__ == "__main__":
    main()
