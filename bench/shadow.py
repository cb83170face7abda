"""Shadow evaluation stays off the response path: `python bench/shadow.py [--json]`.

Two simulated upstreams (`--upstream-ms` per answer: one for live calls, one
for the shadow and judge models) and two `routecore serve` processes in front
of them for the whole run: one without a `shadow` section, one
with `shadow: {model: <the strongest model>, judge: <the cheapest other than the
routed one>, share: 1.0}`,
so every Complete on it also costs a shadow answer and two judge calls (one
shadow answer with `--no-judge`), run in the background; both with their own
SQLite audit file and /metrics. The same Complete load (concurrency `--concurrency`) alternates
between the two servers in chunks (which goes first alternates too), so a burst
of load from the rest of the machine hits both alike. Reported: Complete
p50/p99 on each and the on/off ratios, and the time spent in routecore per
Complete (its audit record's latency minus its upstream attempts: the response
path apart from an upstream made busier by the shadow calls it also serves);
from the shadow server's /metrics, the
evaluations judged and dropped (the load must have really run them); and the
request-path cost of `ShadowRunner.offer` (best of 100 in-process runs).
Numbers, not assertions: compare them within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import types
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from complete import (  # noqa: E402
    HOST,
    PROMPT,
    _run,
    free_port,
    pct,
    python,
    spawn,
    wait_http,
    write_configs,
)


def server_config(svc: Path, out: Path, metrics_port: int, shadow: bool, judge: bool,
                  shadow_url: str) -> str:
    """The service config with its own audit file and /metrics (both servers alike), plus a
    share-1.0 shadow section when `shadow`, the shadow and judge models served by their own
    upstream at `shadow_url` (so live calls meet the same upstream load on both servers);
    returns the shadow model."""
    from routecore import Router
    from routecore.config import load_config

    raw = yaml.safe_load(svc.read_text())
    models = raw["models"]
    cfg = load_config(svc)
    routed = Router.from_config(cfg).route(PROMPT).model  # stays on the live upstream
    specs = cfg.models
    strongest = max(specs, key=lambda m: specs[m].quality_for("default"))
    cheapest = min((m for m in specs if m not in (routed, strongest)),
                   key=lambda m: specs[m].price.input + specs[m].price.output)
    if shadow:
        raw["shadow"] = {"model": strongest, "share": 1.0, "max_usd_per_day": 1000,
                         "concurrency": 4, "queue_size": 100_000,
                         **({"judge": cheapest} if judge else {})}
        any_endpoint = next(iter(raw["endpoints"].values()))
        raw["endpoints"]["shadow-upstream"] = {**any_endpoint, "base_url": shadow_url}
        for m in (strongest, cheapest) if judge else (strongest,):
            models[m]["deployments"] = [{**d, "endpoint": "shadow-upstream"}
                                        for d in models[m].get("deployments") or [{}]]
    raw["metrics"] = {"port": metrics_port}
    raw["audit"] = {"path": str(out.with_suffix(".audit.db"))}
    out.write_text(yaml.safe_dump(raw))
    return strongest


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def metric_sum(text: str, pattern: str) -> float:
    return sum(float(v) for v in re.findall(r"^" + pattern + r" ([0-9.e+-]+)$", text, re.M))


def offer_cost_ns(rounds: int = 100) -> dict[str, float]:
    """Request-path cost of one `offer`: sampled out (share 0) and queued (share 1)."""
    from routecore.calling.shadow import ShadowRunner, ShadowSettings
    from routecore.calling.types import CompletionRequest, CompletionResult, Usage
    from routecore.domain import Decision, RouteRequest

    d = Decision(model="m", provider="p", model_version="m", fallbacks=(), category="qa",
                 category_confidence=1.0, complexity=0.1, estimated_cost_usd=0.0,
                 estimated_latency_ms=0.0, predicted_quality=0.8, reason="", candidates=(),
                 router_version="v", strategy="s", input_tokens=5, request_id="r")
    req = CompletionRequest(RouteRequest(prompt="hi"))
    res = CompletionResult("answer", "m", "p", Usage(5, 5), 0.0, 1.0, (), decision=d)
    out: dict[str, float] = {}

    async def run() -> None:
        for share in (0.0, 1.0):
            settings = ShadowSettings(share=share, max_usd_per_day=1.0, model="x",
                                      queue_size=10_000_000)
            fake: Any = types.SimpleNamespace(settings=types.SimpleNamespace(shadow=settings))
            runner = ShadowRunner()
            offer = runner.offer
            best = float("inf")
            for _ in range(rounds):
                t0 = time.perf_counter()
                for _ in range(1000):
                    offer(fake, req, res, "answer")
                best = min(best, time.perf_counter() - t0)
                runner._queue = asyncio.Queue()  # drop the jobs unrun (no upstream here)
            await runner.aclose()
            out["sampled_out_ns" if share == 0.0 else "queued_ns"] = round(best / 1000 * 1e9, 1)

    asyncio.run(run())
    return out


async def bench(ns: argparse.Namespace) -> dict[str, Any]:
    import grpc

    from routecore.v1 import router_pb2 as pb
    from routecore.v1 import router_pb2_grpc as pbg

    tmp = Path(tempfile.mkdtemp(prefix="rc-bench-shadow-"))
    sim_port, sim2_port, off_port, on_port, mport = (free_port() for _ in range(5))
    sim_url, sim2_url = f"http://{HOST}:{sim_port}", f"http://{HOST}:{sim2_port}"
    sim_cfg, svc_cfg = write_configs(tmp, sim_url, ns.upstream_ms)
    on_cfg, off_cfg = tmp / "svc-shadow.yaml", tmp / "svc-plain.yaml"
    shadow_model = server_config(svc_cfg, on_cfg, mport, True, ns.judge, sim2_url)
    server_config(svc_cfg, off_cfg, free_port(), False, ns.judge, sim2_url)
    env = {"PYTHONPATH": str(ROOT / "src"), "XDG_STATE_HOME": str(tmp / "state")}

    def sim_code(port: int) -> list[str]:
        return python("from routecore.config import load_config;"
                      "from routecore.calling.providers.sim_server import run_sim_server;"
                      f"run_sim_server({HOST!r}, {port}, load_config({str(sim_cfg)!r}))")

    def serve(cfg: Path, port: int) -> list[str]:
        return [sys.executable, "-m", "routecore.cli", "serve", "--config", str(cfg),
                "--host", HOST, "--port", str(port), "--log-level", "warning"]

    got: dict[str, list[float]] = {"off": [], "on": []}
    with spawn(sim_code(sim_port), env), spawn(sim_code(sim2_port), env), \
            spawn(serve(off_cfg, off_port), env), spawn(serve(on_cfg, on_port), env):
        await wait_http(f"{sim_url}/health")
        await wait_http(f"{sim2_url}/health")
        chans = {k: grpc.aio.insecure_channel(f"{HOST}:{p}")
                 for k, p in (("off", off_port), ("on", on_port))}
        try:
            for ch in chans.values():
                await asyncio.wait_for(ch.channel_ready(), 60)
            stubs = {k: pbg.RouterStub(ch) for k, ch in chans.items()}
            req = pb.CompleteRequest(route=pb.RouteRequest(prompt=PROMPT), max_output_tokens=64)
            answers = {k: await s.Complete(req, timeout=30) for k, s in stubs.items()}
            same = all(getattr(answers["on"], f) == getattr(answers["off"], f)
                       for f in ("text", "model", "cost_usd"))
            per = max(1, ns.n // ns.chunks)
            for i in range(ns.chunks):
                for key in (("off", "on") if i % 2 == 0 else ("on", "off")):
                    stub = stubs[key]

                    async def call(stub: Any = stub) -> None:
                        await stub.Complete(req, timeout=30)

                    ms, _wall = await _run(call, per, ns.concurrency)
                    got[key] += ms
            await asyncio.sleep(max(1.0, ns.upstream_ms * 4 / 1000))  # the last evaluations
            text = scrape(mport)
        finally:
            for ch in chans.values():
                await ch.close()
    out: dict[str, Any] = {"upstream_ms": ns.upstream_ms, "concurrency": ns.concurrency,
                           "judge": ns.judge,
                           "n_per_server": len(got["on"]), "shadow_model": shadow_model,
                           "same_answer": same}
    for key, ms in got.items():
        out[key] = {"p50_ms": round(pct(ms, 0.5), 3), "p99_ms": round(pct(ms, 0.99), 3),
                    "mean_ms": round(statistics.fmean(ms), 3)}
    out["p50_ratio"] = round(out["on"]["p50_ms"] / out["off"]["p50_ms"], 3)
    out["p99_ratio"] = round(out["on"]["p99_ms"] / out["off"]["p99_ms"], 3)
    # Time in routecore per Complete (RPC minus its upstream attempts), from each server's
    # audit trail: what the response path itself costs, apart from a busier upstream.
    for key, cfg in (("off", off_cfg), ("on", on_cfg)):
        with sqlite3.connect(cfg.with_suffix(".audit.db")) as db:
            own = [r[0] for r in db.execute(
                "SELECT latency_ms - upstream_ms FROM routecore_audit WHERE rpc = 'Complete'")]
        out[key].update(own_p50_ms=round(pct(own, 0.5), 3), own_p99_ms=round(pct(own, 0.99), 3))
    out["own_p50_ratio"] = round(out["on"]["own_p50_ms"] / out["off"]["own_p50_ms"], 3)
    out["shadow_evaluations"] = metric_sum(text, r'routecore_shadow_outcomes_total\{[^}]*\}')
    out["shadow_dropped"] = metric_sum(text, r'routecore_shadow_dropped_total\{[^}]*\}')
    out["shadow_spend_usd"] = round(metric_sum(text, r'routecore_shadow_cost_usd_total\{[^}]*\}'), 6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=400, help="Complete calls per server")
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--upstream-ms", type=float, default=20.0)
    ap.add_argument("--no-judge", dest="judge", action="store_false",
                    help="shadow without a judge model (one extra upstream call, not three)")
    ap.add_argument("--json", action="store_true")
    ns = ap.parse_args()
    out = asyncio.run(bench(ns))
    out["offer"] = offer_cost_ns()
    if ns.json:
        print(json.dumps(out, indent=2))
        return
    print(f"Complete at concurrency {ns.concurrency}, upstream {ns.upstream_ms:g} ms, "
          f"{out['n_per_server']} calls per server (same answer on both: {out['same_answer']})")
    for key in ("off", "on"):
        r = out[key]
        print(f"  shadow {key:3}: p50 {r['p50_ms']:8.3f} ms  p99 {r['p99_ms']:8.3f} ms  "
              f"mean {r['mean_ms']:8.3f} ms; in routecore (upstream excluded) p50 "
              f"{r['own_p50_ms']:.3f} ms p99 {r['own_p99_ms']:.3f} ms")
    print(f"  on/off: p50 {out['p50_ratio']:.3f}x  p99 {out['p99_ratio']:.3f}x; in routecore "
          f"p50 {out['own_p50_ratio']:.3f}x")
    print(f"shadow server: {out['shadow_evaluations']:.0f} evaluations "
          f"({out['shadow_model']}{' + judge' if ns.judge else ''}), "
          f"{out['shadow_dropped']:.0f} dropped, "
          f"${out['shadow_spend_usd']:.6f} shadow spend")
    print(f"offer on the request path: {out['offer']['sampled_out_ns']:.0f} ns sampled out, "
          f"{out['offer']['queued_ns']:.0f} ns queued")


if __name__ == "__main__":
    main()
