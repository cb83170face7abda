"""Benchmark budgets across replicas: two `routecore serve` processes on one Redis.

    python bench/budget.py [--json] [--clients 64] [--requests 1280] [--cap 0.02]
                           [--redis-url redis://...] [--route-n 2000]

1. Budget exactness: a throwaway `redis-server` (or --redis-url), two serving
   processes started as `routecore serve` with `state.backend: redis` and one
   tenant capped at `--cap` USD a day; `--clients` concurrent gRPC clients
   spread over both send `--requests` Completes in all (pinned to one model, so
   a refused call cannot slide to a cheaper one). Reported: the settled spend
   from GetBudget against the cap (it may pass the cap by at most one call's
   estimate; with reservations it should not pass it at all), the spend left
   reserved afterwards (0: every hold was settled), the number of charges the
   spend amounts to against the number of successes (equal: nobody was charged
   twice), and how many calls got RESOURCE_EXHAUSTED.
2. Route cost of auth and budgets: Route p50/p99 at concurrency 1 against a
   budgeted server with API keys on (the caller's caps read from the pacing
   snapshot) versus a server with neither, on fresh servers in the same run
   (target: within 1.3x); then, after the burst, for the exhausted tenant,
   whose Routes are paced. The Redis server process also keeps its other kinds
   of state there (recent decisions are written behind on every Route), so the
   ratio is the whole backend's cost, not the budgets' alone (their view is a
   few microseconds in process).

No timed assertions; the machine is small and shared, so compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from routecore.v1 import router_pb2 as pb  # noqa: E402
from routecore.v1 import router_pb2_grpc as pbg  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from complete import free_port, pct  # noqa: E402

HOST = "127.0.0.1"
TENANT = "bench-tenant"
ROUTE_TENANT = "route-tenant"  # budgeted too, with room to spare (no pacing)
MODEL = "gemini-2.5-pro"
PROMPT = "Summarize the plot of Hamlet in two sentences."
_UP_TO = re.compile(r"may cost up to \$([0-9.]+)")
# API keys for the budgeted servers: the target is Route with auth AND Redis budgets on.
KEYS = {TENANT: "rk-bench-tenant-key-0001", ROUTE_TENANT: "rk-bench-route-key-0002"}


def bearer(tenant: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {KEYS[tenant]}"),)


@contextlib.contextmanager
def spawn(argv: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` quietly for the block; terminate it after (kill if it lingers)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def redis(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not on PATH (or pass --redis-url)")
    port = free_port()
    with tempfile.TemporaryDirectory() as d, spawn([exe, "--port", str(port), "--bind", HOST,
                                                     "--save", "", "--appendonly", "no",
                                                     "--dir", d]):
        yield f"redis://{HOST}:{port}/0"


def write_config(path: Path, budgets: dict[str, Any] | None, redis_url: str,
                 upstream_ms: float) -> Path:
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    for spec in raw["models"].values():  # a little upstream time so calls overlap
        spec["sim"] = {**spec.get("sim", {}),
                       "latency_ms": {"p50": upstream_ms, "p95": upstream_ms}}
    if budgets is not None:
        raw["budgets"] = budgets
        raw["state"] = {"backend": "redis", "redis_url": redis_url}
        raw["auth"] = {"keys": [{"id": f"{t}-key", "tenant": t,
                                 "sha256": hashlib.sha256(k.encode()).hexdigest()}
                                for t, k in KEYS.items()]}
    path.write_text(yaml.safe_dump(raw))
    return path


async def ready(stub: pbg.RouterStub) -> None:
    end = time.monotonic() + 60
    while True:
        try:
            await stub.ListModels(pb.ListModelsRequest(), timeout=2)
            return
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                return  # up, with auth on
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.2)


async def exactness(stubs: list[pbg.RouterStub], clients: int, requests: int,
                    cap: float) -> dict[str, Any]:
    warm = pb.CompleteRequest(route=pb.RouteRequest(prompt=PROMPT))
    for s in stubs:  # the first call builds each server's provider pools
        await s.Complete(warm, metadata=bearer(ROUTE_TENANT), timeout=30)
    todo = iter(range(requests))
    costs: list[float] = []
    lat: list[float] = []
    exhausted, other, estimates = 0, [], []
    req = pb.CompleteRequest(route=pb.RouteRequest(
        prompt=PROMPT, constraints=pb.Constraints(allow_models=[MODEL])),
        max_output_tokens=64)

    async def client(i: int) -> None:
        nonlocal exhausted
        stub = stubs[i % len(stubs)]
        for _ in todo:
            t0 = time.perf_counter()
            try:
                res = await stub.Complete(req, metadata=bearer(TENANT), timeout=30)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    exhausted += 1
                    m = _UP_TO.search(exc.details() or "")
                    if m:
                        estimates.append(float(m.group(1)))
                else:
                    other.append(f"{exc.code().name}: {(exc.details() or '')[:120]}")
                continue
            lat.append((time.perf_counter() - t0) * 1000)
            costs.append(res.cost_usd)

    t0 = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.perf_counter() - t0
    views = [await s.GetBudget(pb.BudgetRequest(), metadata=bearer(TENANT), timeout=5)
             for s in stubs]
    (w,) = views[0].windows
    same = all(v.windows[0].spent == w.spent for v in views)
    per_call = statistics.median(costs) if costs else 0.0
    estimate = max(estimates) if estimates else float("nan")
    return {
        "cap_usd": cap, "settled_spend_usd": round(w.spent, 9),
        "over_cap_usd": round(w.spent - cap, 9), "one_call_estimate_usd": estimate,
        "within_one_estimate": w.spent <= cap + (estimate if estimates else 0.0),
        "left_reserved_usd": round(w.reserved, 9), "servers_agree": same,
        "succeeded": len(costs), "client_cost_sum_usd": round(sum(costs), 9),
        "charges_in_spend": round(w.spent / per_call, 3) if per_call else 0,
        "charged_twice": abs(w.spent - sum(costs)) > 1e-9,
        "resource_exhausted": exhausted, "other_errors": len(other),
        "other_error_samples": other[:3], "requests": requests, "clients": clients,
        "wall_s": round(wall, 2),
        "complete_p50_ms": round(pct(lat, 0.5), 2), "complete_p99_ms": round(pct(lat, 0.99), 2),
    }


async def route_latency(stub: pbg.RouterStub, n: int, tenant: str | None) -> dict[str, float]:
    """Route p50/p99 at concurrency 1; `tenant` None: no auth (the server without budgets)."""
    req = pb.RouteRequest(prompt=PROMPT)
    md = bearer(tenant) if tenant else None
    for _ in range(200):
        await stub.Route(req, metadata=md, timeout=5)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        await stub.Route(req, metadata=md, timeout=5)
        lat.append((time.perf_counter() - t0) * 1e6)
    return {"p50_us": round(pct(lat, 0.5), 1), "p99_us": round(pct(lat, 0.99), 1)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    env = {"PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d, redis(args.redis_url) as url:
        budgets = {"tenants": {TENANT: {"usd_per_day": args.cap},
                               ROUTE_TENANT: {"usd_per_day": 1000.0}}}
        capped = write_config(Path(d) / "capped.yaml", budgets, url, args.upstream_ms)
        plain = write_config(Path(d) / "plain.yaml", None, url, args.upstream_ms)
        ports = [free_port() for _ in range(3)]

        def serve(cfg: Path, port: int) -> list[str]:
            return [sys.executable, "-m", "routecore.cli", "serve", "--config", str(cfg),
                    "--host", HOST, "--port", str(port), "--log-level", "warning"]

        with spawn(serve(capped, ports[0]), env), spawn(serve(capped, ports[1]), env), \
                spawn(serve(plain, ports[2]), env):
            chans = [grpc.aio.insecure_channel(f"{HOST}:{p}") for p in ports]
            stubs = [pbg.RouterStub(c) for c in chans]
            try:
                for s in stubs:
                    await ready(s)
                # Route without auth and budgets vs with both (a budget on Redis with room to
                # spare), on fresh servers, alternating to spread the machine's noise.
                rounds = [(await route_latency(stubs[2], args.route_n, None),
                           await route_latency(stubs[1], args.route_n, ROUTE_TENANT))
                          for _ in range(3)]
                out["exactness"] = await exactness(stubs[:2], args.clients, args.requests,
                                                   args.cap)
                await asyncio.sleep(2)  # let the servers' audit writers drain the burst
                # The exhausted tenant (pacing at 1) after the burst, against the plain server.
                after = [(await route_latency(stubs[2], args.route_n, None),
                          await route_latency(stubs[1], args.route_n, TENANT))
                         for _ in range(3)]
                base, with_b = (statistics.median(r[k]["p50_us"] for r in rounds)
                                for k in range(2))
                base2, paced = (statistics.median(r[k]["p50_us"] for r in after)
                                for k in range(2))
                out["route"] = {"plain_p50_us": base, "auth_budgets_redis_p50_us": with_b,
                                "ratio": round(with_b / base, 3), "paced_p50_us": paced,
                                "paced_ratio": round(paced / base2, 3), "rounds": rounds,
                                "rounds_after_burst": after, "n_per_round": args.route_n}
            finally:
                for c in chans:
                    await c.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=1280)
    ap.add_argument("--cap", type=float, default=0.02, help="the tenant's usd_per_day")
    ap.add_argument("--upstream-ms", type=float, default=20.0)
    ap.add_argument("--route-n", type=int, default=2000)
    ap.add_argument("--redis-url", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = asyncio.run(run(args))
    if args.json:
        print(json.dumps(res, indent=2))
        return
    e, r = res["exactness"], res["route"]
    print(f"budget exactness: 2 servers, 1 Redis, {e['clients']} clients, {e['requests']} "
          f"Completes, cap ${e['cap_usd']}/day ({e['wall_s']} s)")
    print(f"  settled spend     ${e['settled_spend_usd']:.6f} (over the cap by "
          f"${e['over_cap_usd']:.6f}; one call's estimate ${e['one_call_estimate_usd']:.6f}; "
          f"within: {e['within_one_estimate']})")
    print(f"  succeeded         {e['succeeded']} (spend = {e['charges_in_spend']} charges; "
          f"client-side cost sum ${e['client_cost_sum_usd']:.6f}; charged twice: "
          f"{e['charged_twice']})")
    print(f"  RESOURCE_EXHAUSTED {e['resource_exhausted']}, other errors {e['other_errors']} "
          f"{e['other_error_samples'] or ''}")
    print(f"  left reserved     ${e['left_reserved_usd']:.6f}; both servers agree: "
          f"{e['servers_agree']}; Complete p50 {e['complete_p50_ms']} ms, "
          f"p99 {e['complete_p99_ms']} ms")
    print(f"route p50 (c1, {r['n_per_round']} x 3 rounds): no auth, no budgets "
          f"{r['plain_p50_us']} us; auth + budgets on Redis {r['auth_budgets_redis_p50_us']} us "
          f"(ratio {r['ratio']}), exhausted tenant paced {r['paced_p50_us']} us "
          f"(ratio {r['paced_ratio']})")


if __name__ == "__main__":
    main()
