"""The LLM classifier's cost in Route latency, and how often cascade asks it.

    python bench/llm_classifier.py [--json] [--n 200] [--upstream-ms 0] [--threshold 0.6]

One run, same prompts (drawn from the shared `llmrouter.train.jsonl`), three
`routecore serve` processes that differ only in `classifier.mode`: trained (the
local baseline), llm and cascade (`classifier.llm.threshold`). The classifying
model is served over real HTTP by the simulated provider in its own process,
answering after `--upstream-ms` (0: routecore's own overhead of asking, plus a
loopback HTTP call; a real small model adds its own latency on top). The LLM
answer cache is off, so every request that asks pays the call. The modes are
measured in interleaved rounds (concurrency 1) and reported as p50/p99 Route
latency, with ratios to the local baseline from the same run.

Cascade's share: in the RPCs (classifier_source per decision), and over the whole
file in process (the local classifier's confidence against the threshold, several
thresholds). Numbers, not assertions: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from complete import HOST, ROOT, python, spawn, wait_http
from route import free_port, pct

from routecore.learned.data import default_data_dir

# $ROUTECORE_DATA_DIR or ../shared/data/routing
DATA = default_data_dir(ROOT) / "llmrouter.train.jsonl"
MODES = ("trained", "llm", "cascade")


def all_prompts() -> list[str]:
    with DATA.open(encoding="utf-8") as f:  # not splitlines(): prompts hold U+2028
        return [json.loads(line)["prompt"] for line in f if line.strip()]


def prompts(n: int, seed: int = 7) -> list[str]:
    rows = all_prompts()
    random.Random(seed).shuffle(rows)
    return rows[:n]


def write_configs(tmp: Path, sim_url: str, upstream_ms: int, threshold: float) -> dict[str, Path]:
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    # slow_N: the simulated upstream answers after N ms.
    model_id = f"classify-slow_{upstream_ms}" if upstream_ms else "classify"
    raw["endpoints"]["sim-http"] = {"kind": "openai", "base_url": sim_url, "timeout_s": 10}
    raw["models"]["classify"] = {
        "provider": "sim-http", "model_id": model_id, "price": {"input": 0.1, "output": 0.4},
        "context_window": 128000, "capabilities": ["json"], "quality": {"default": 0.05},
        "latency": {"p50_ms": 200, "p95_ms": 500}, "deployments": [{"endpoint": "sim-http"}]}
    out = {}
    for mode in MODES:
        cfg = dict(raw)
        cfg["classifier"] = {"mode": mode} if mode == "trained" else {
            "mode": mode, "llm": {"model": "classify", "threshold": threshold, "cache_size": 0,
                                  "timeout_ms": 5000}}
        out[mode] = tmp / f"{mode}.yaml"
        out[mode].write_text(yaml.safe_dump(cfg))
    return out


def offline_share(thresholds: list[float]) -> dict[str, Any]:
    """Share of the whole file below each threshold (the local classifier, in process)."""
    from routecore import Router

    router = Router.from_config(None)
    conf = []
    for p in all_prompts():
        conf.append(router.classifier.classify(p, router.classifier.features(p)).confidence)
    return {"prompts": len(conf),
            "share_asked": {f"{t:g}": round(sum(c < t for c in conf) / len(conf), 4)
                            for t in thresholds}}


async def measure(ports: dict[str, int], texts: list[str], rounds: int) -> dict[str, Any]:
    import grpc

    from routecore.v1 import router_pb2 as pb
    from routecore.v1 import router_pb2_grpc as pbg

    ms: dict[str, list[float]] = {m: [] for m in MODES}
    sources: dict[str, Counter[str]] = {m: Counter() for m in MODES}
    channels = {m: grpc.aio.insecure_channel(f"{HOST}:{p}") for m, p in ports.items()}
    stubs = {m: pbg.RouterStub(ch) for m, ch in channels.items()}
    for stub in stubs.values():
        await stub.Route(pb.RouteRequest(prompt="warm up"), wait_for_ready=True, timeout=60)
    loop = asyncio.get_running_loop()
    for r in range(rounds):
        for i, text in enumerate(texts):
            req = pb.RouteRequest(prompt=text, tenant=f"t{i % 7}")
            for mode in (MODES if (i + r) % 2 else MODES[::-1]):  # alternate the order
                t0 = loop.time()
                d = await stubs[mode].Route(req, timeout=30)
                ms[mode].append((loop.time() - t0) * 1000.0)
                sources[mode][d.classifier_source or "local"] += 1
    for ch in channels.values():
        await ch.close()
    base = pct(ms["trained"], 0.5)
    base99 = pct(ms["trained"], 0.99)
    out: dict[str, Any] = {}
    for mode in MODES:
        n = len(ms[mode])
        p50, p99 = pct(ms[mode], 0.5), pct(ms[mode], 0.99)
        out[mode] = {"requests": n, "p50_ms": round(p50, 3), "p99_ms": round(p99, 3),
                     "mean_ms": round(sum(ms[mode]) / n, 3),
                     "p50_vs_local": round(p50 / base, 2), "p99_vs_local": round(p99 / base99, 2),
                     "sources": dict(sources[mode])}
    asked = sum(v for k, v in sources["cascade"].items() if k != "local")
    out["cascade"]["share_asked"] = round(asked / len(ms["cascade"]), 4)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="rc-llmcls-"))
    sim_port = free_port()
    ports = {m: free_port() for m in MODES}
    sim_url = f"http://{HOST}:{sim_port}"
    configs = write_configs(tmp, sim_url, args.upstream_ms, args.threshold)
    env = {"PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "XDG_STATE_HOME": str(tmp / "state")}
    sim_code = ("from routecore.config import load_config;"
                "from routecore.calling.providers.sim_server import run_sim_server;"
                f"run_sim_server({HOST!r}, {sim_port}, load_config(None))")
    argv = {m: [sys.executable, "-m", "routecore.cli", "serve", "--config", str(configs[m]),
                "--host", HOST, "--port", str(ports[m]), "--log-level", "warning"]
            for m in MODES}
    texts = prompts(args.n)
    with spawn(python(sim_code), env), spawn(argv["trained"], env), spawn(argv["llm"], env), \
            spawn(argv["cascade"], env):
        await wait_http(f"{sim_url}/health")
        rpc = await measure(ports, texts, args.rounds)
    return {"prompts": len(texts), "rounds": args.rounds, "upstream_ms": args.upstream_ms,
            "threshold": args.threshold, "route": rpc,
            "whole_file": offline_share([0.5, 0.6, 0.7, 0.8, 0.9])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--n", type=int, default=200, help="prompts from the shared file")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--upstream-ms", type=int, default=0,
                    help="the classifying model's simulated answer time")
    ap.add_argument("--threshold", type=float, default=0.6, help="cascade's threshold")
    args = ap.parse_args()
    if not DATA.exists():
        print(f"skipped: {DATA} is absent")
        return
    out = asyncio.run(run(args))
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['prompts']} prompts x {out['rounds']} rounds, classifying model answers after "
          f"{out['upstream_ms']} ms, cascade threshold {out['threshold']}")
    for mode in MODES:
        r = out["route"][mode]
        print(f"  {mode:8s} Route p50 {r['p50_ms']:8.3f} ms ({r['p50_vs_local']}x local)  "
              f"p99 {r['p99_ms']:8.3f} ms ({r['p99_vs_local']}x)  mean {r['mean_ms']:.3f} ms  "
              f"sources {r['sources']}")
    print(f"  cascade asked the LLM for {out['route']['cascade']['share_asked']:.1%} of Routes")
    w = out["whole_file"]
    print(f"  whole file ({w['prompts']} prompts), share below threshold: {w['share_asked']}")


if __name__ == "__main__":
    main()
