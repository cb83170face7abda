"""Provider arbitrage: spend against the weighted baseline, and the decision's overhead.

    python bench/arbitrage.py [--n 600] [--json]

One model (Llama 3.3 70B) sold by three deployments at the catalogue's list prices
(routecore defaults.yaml: groq $0.59/$0.79, deepinfra $0.13/$0.40, together
$0.88/$0.88 per Mtok) with different p95 priors (groq 600 ms, deepinfra 2,500 ms,
together 900 ms). The workload is `--n` prompts of the shared llmrouter data
(../shared/data/routing, read by path; a fixed synthetic set when absent), 256
output tokens each; about one request in three is interactive (max_latency_ms 1,500).
All in one process on the in-process simulated provider, in the same run:

- weighted: the deployments carry no prices of their own, so the router sees
  them as equal and weights share the traffic (the behaviour before arbitrage);
  each answer is billed at the real price of the deployment that gave it;
- arbitrage: the same deployments with their prices and p95 priors;
- both again with faults: deepinfra answers 500 to 20% of calls (failover).

Spend is the sum of what each answering deployment charges; "latency misses" count
interactive requests answered by a deployment whose p95 prior is over their
max_latency_ms. Decision time: Router.route p50/p99 for the model sold by one
deployment (no ranking: the path before arbitrage) against three priced ones,
alternating rounds. Numbers, not assertions: compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from routecore import Router  # noqa: E402
from routecore.calling.completion import Completer  # noqa: E402
from routecore.calling.providers import Provider, SimEngine  # noqa: E402
from routecore.calling.providers.simulated import SimulatedProvider  # noqa: E402
from routecore.calling.types import CompletionRequest  # noqa: E402
from routecore.config import Config, Price, parse_config  # noqa: E402
from routecore.domain import Constraints, RouteRequest  # noqa: E402
from routecore.logs import configure_logging  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from complete import pct  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "routing" / "llmrouter.train.jsonl"
# name: (input, output USD per Mtok, p95 ms)
SELLERS = {"groq": (0.59, 0.79, 600.0), "deepinfra": (0.13, 0.40, 2500.0),
           "together": (0.88, 0.88, 900.0)}
OUT_TOKENS = 256
INTERACTIVE_MS = 1500.0


def _interactive(k: int) -> bool:
    """About one request in three, not in step with a round robin over three sellers."""
    return random.Random(k).random() < 1 / 3


def prompts(n: int) -> list[str]:
    if DATA.exists():
        out: list[str] = []
        with DATA.open() as f:
            for line in f:
                out.append(json.loads(line)["prompt"][:8000])
                if len(out) == n:
                    return out
    return [f"Summarize point {i} of the meeting about the budget and the timeline."
            for i in range(n)]


def config(priced: bool, faults: bool = False, sellers: tuple[str, ...] = tuple(SELLERS)) -> Config:
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    deps = []
    for name in sellers:
        i, o, p95 = SELLERS[name]
        d: dict[str, Any] = {"endpoint": name, "model_id": f"llama-3.3-70b@{name}",
                             "provider": name}
        if priced:
            d["price"] = {"input": i, "output": o}
            d["latency"] = {"p50_ms": p95 / 3, "p95_ms": p95, "tokens_per_s": 200}
        deps.append(d)
    model: dict[str, Any] = {
        "provider": "groq", "model_id": "llama-3.3-70b", "price": {"input": 0.59, "output": 0.79},
        "context_window": 131072, "max_output_tokens": 32768, "capabilities": ["tools", "json"],
        "quality": {"default": 0.8}, "latency": {"p50_ms": 200, "p95_ms": 600,
                                                 "tokens_per_s": 200},
        "deployments": deps}
    if faults:
        model["sim"] = {"status_5xx_rate": 0.2, "seed": 7}
    raw["models"] = {"llama-3.3-70b": model}
    raw["endpoints"] = {n: {"kind": "simulated", "timeout_s": 10} for n in SELLERS}
    raw["routing"] = {}
    raw["resilience"] = {"retry": {"max_attempts": 0},
                         "breaker": {"failure_threshold": 1000, "failure_rate": 1.0,
                                     "min_calls": 1000}}
    return parse_config(raw, "<bench>")


def providers(cfg: Config, faults: bool) -> dict[str, Provider]:
    """In-process simulated sellers; with `faults`, deepinfra answers 500 to 20% of calls."""
    clean = SimEngine(cfg)
    faulty = SimEngine(config(True, faults=True))
    return {name: SimulatedProvider(ep, faulty if faults and name == "deepinfra" else clean)
            for name, ep in cfg.endpoints.items()}


async def workload(cfg: Config, texts: list[str], faults: bool) -> dict[str, Any]:
    router = Router.from_config(cfg)
    completer = Completer(cfg, router, providers=providers(cfg, faults))
    real = {n: Price(i, o) for n, (i, o, _) in SELLERS.items()}
    spend, charged, misses, used = 0.0, 0.0, 0, dict.fromkeys(SELLERS, 0)
    for k, text in enumerate(texts):
        interactive = _interactive(k)
        c = Constraints(max_output_tokens=OUT_TOKENS,
                        max_latency_ms=INTERACTIVE_MS if interactive else None)
        res = await completer.complete(CompletionRequest(RouteRequest(prompt=text, constraints=c),
                                                         max_output_tokens=OUT_TOKENS))
        used[res.deployment] += 1
        spend += real[res.deployment].cost(res.usage.input_tokens, res.usage.output_tokens)
        charged += res.cost_usd
        misses += interactive and SELLERS[res.deployment][2] > INTERACTIVE_MS
    await completer.aclose()
    return {"spend_usd": round(spend, 6), "cost_usd_reported": round(charged, 6),
            "served_by": used, "interactive_latency_misses": misses}


def decision_times(texts: list[str], rounds: int, per_round: int) -> dict[str, Any]:
    one = Router.from_config(config(True, sellers=("groq",)))
    three = Router.from_config(config(True))
    c = Constraints(max_output_tokens=OUT_TOKENS, max_latency_ms=INTERACTIVE_MS)
    reqs = [RouteRequest(prompt=t, constraints=c if _interactive(i) else Constraints(
        max_output_tokens=OUT_TOKENS)) for i, t in enumerate(texts)]
    times: dict[str, list[float]] = {"one": [], "three": []}
    ratios: list[float] = []
    for _ in range(rounds):
        p50 = {}
        for name, router in (("one", one), ("three", three)):
            got = []
            for i in range(per_round):
                t0 = time.perf_counter_ns()
                router.route(reqs[i % len(reqs)])
                got.append((time.perf_counter_ns() - t0) / 1000.0)
            times[name] += got
            p50[name] = pct(got, 0.5)
        ratios.append(p50["three"] / p50["one"])
    return {
        "one_deployment_us": {"p50": round(pct(times["one"], 0.5), 1),
                              "p99": round(pct(times["one"], 0.99), 1)},
        "three_priced_us": {"p50": round(pct(times["three"], 0.5), 1),
                            "p99": round(pct(times["three"], 0.99), 1)},
        "p50_ratio_median": round(statistics.median(ratios), 3),
        "p50_ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "rounds": rounds, "per_round": per_round,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    texts = prompts(args.n)
    out: dict[str, Any] = {"n": len(texts), "data": str(DATA) if DATA.exists() else "synthetic",
                           "output_tokens": OUT_TOKENS, "interactive_share": "1/3",
                           "sellers_usd_per_mtok_p95_ms": SELLERS}
    for faults in (False, True):
        tag = "with_faults" if faults else "clean"
        base = await workload(config(False), texts, faults)
        arb = await workload(config(True), texts, faults)
        out[tag] = {"weighted": base, "arbitrage": arb,
                    "saving": round(1 - arb["spend_usd"] / base["spend_usd"], 4)}
    out["decision"] = decision_times(texts, args.rounds, args.per_round)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-round", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    configure_logging("warning")
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
