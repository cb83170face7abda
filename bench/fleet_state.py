"""Benchmark the fleet state of Complete: rate limits and breakers in memory vs in Redis.

    python bench/fleet_state.py [--json] [--calls 2000] [--rounds 5] [--redis-url redis://...]

1. Cost: `Completer.complete` against the in-process simulated provider (no
   network to the model, so what is measured is routing + state), one model
   with RPM/TPM limits so every call takes from the buckets and asks its
   breaker. The memory and Redis backends alternate in `--rounds` chunks in
   one run; reported: p50/p99 per call for each and the extra time per call
   that Redis adds (two to three round trips: breaker allow + record, bucket
   take + correction).
2. Exactness: two Completers (replicas) on one Redis, 200 concurrent calls
   against one model limited to 50 RPM: how many got through (50 exactly when
   the limit is global), and how many got RESOURCE_EXHAUSTED.

A throwaway redis-server is started unless --redis-url is given. Numbers, no
assertions: compare within one run (the machine is small and shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from conftest_complete import make_config, model, router_for  # noqa: E402

from routecore.calling.completion import Completer  # noqa: E402
from routecore.calling.types import CompletionRequest  # noqa: E402
from routecore.domain import RouteRequest  # noqa: E402
from routecore.errors import ResourceExhausted  # noqa: E402
from routecore.state import MemoryBackend, RedisBackend, StateConfig  # noqa: E402

REQ = CompletionRequest(RouteRequest(prompt="What is the capital of France?"))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def redis_server() -> tuple[subprocess.Popen[bytes], str, tempfile.TemporaryDirectory[str]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = tempfile.TemporaryDirectory(prefix="rc-bench-redis-")
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not on PATH (or pass --redis-url)")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", d.name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0", d


async def latency(url: str, calls: int, rounds: int) -> dict[str, Any]:
    name = f"bench-{time.time_ns()}"
    cfg = make_config({name: model(name, rpm=10**9, tpm=10**12)})
    redis = RedisBackend(StateConfig(backend="redis", redis_url=url))
    await redis.start()
    completers = {"memory": Completer(cfg, router_for(name), state=MemoryBackend()),
                  "redis": Completer(cfg, router_for(name), state=redis)}
    times: dict[str, list[float]] = {k: [] for k in completers}
    for c in completers.values():  # warm up (connections, scripts)
        for _ in range(20):
            await c.complete(REQ)
    for _ in range(rounds):
        for kind, c in completers.items():
            for _ in range(calls // rounds):
                t0 = time.perf_counter()
                await c.complete(REQ)
                times[kind].append((time.perf_counter() - t0) * 1e6)
    for c in completers.values():
        await c.aclose()
    await redis.aclose()
    out = {k: {"p50_us": statistics.median(v), "p99_us": pct(v, 0.99), "n": len(v)}
           for k, v in times.items()}
    out["redis_extra_p50_us"] = out["redis"]["p50_us"] - out["memory"]["p50_us"]
    return out


async def exactness(url: str) -> dict[str, int]:
    name = f"bench-rpm-{time.time_ns()}"
    cfg = make_config({name: model(name, rpm=50)})
    backends = [RedisBackend(StateConfig(backend="redis", redis_url=url)) for _ in range(2)]
    for b in backends:
        await b.start()
    replicas = [Completer(cfg, router_for(name), state=b) for b in backends]

    async def one(i: int) -> bool:
        try:
            await replicas[i % 2].complete(REQ)
            return True
        except ResourceExhausted:
            return False

    ok = await asyncio.gather(*(one(i) for i in range(200)))
    for c in replicas:
        await c.aclose()
    for b in backends:
        await b.aclose()
    return {"limit_rpm": 50, "calls": 200, "admitted": sum(ok),
            "resource_exhausted": len(ok) - sum(ok)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--redis-url", default=None)
    ns = ap.parse_args()
    server = None
    url = ns.redis_url
    if url is None:
        server = redis_server()
        url = server[1]
    try:
        res = {"latency": await latency(url, ns.calls, ns.rounds),
               "exactness": await exactness(url)}
    finally:
        if server is not None:
            server[0].terminate()
            server[0].wait(10)
            server[2].cleanup()
    if ns.json:
        print(json.dumps(res, indent=2))
        return
    lat = res["latency"]
    for kind in ("memory", "redis"):
        print(f"Complete, {kind:6s} backend: p50 {lat[kind]['p50_us']:8.0f} us   "
              f"p99 {lat[kind]['p99_us']:8.0f} us   ({lat[kind]['n']} calls)")
    print(f"Redis adds {lat['redis_extra_p50_us']:.0f} us per call at p50 (breaker + buckets)")
    ex = res["exactness"]
    print(f"two replicas, one Redis, {ex['calls']} concurrent calls at {ex['limit_rpm']} RPM: "
          f"{ex['admitted']} admitted, {ex['resource_exhausted']} RESOURCE_EXHAUSTED")


if __name__ == "__main__":
    asyncio.run(main())
