"""RouteBatch against sequential Route RPCs, per prompt: `python bench/route_batch.py [--json]`.

One `routecore serve` process (one worker), one client in this process. In
the same run, for the same N prompts (mixed lengths, 100 to 2,000 characters):
- sequential `Route`: one RPC after another (concurrency 1), as a client
  without RouteBatch would route a backlog;
- `RouteBatch`: the prompts in batches of `--batch` (default 1,000) items.
For each: wall time per prompt, and the server's CPU time per prompt (from
/proc, user + system; less sensitive than wall time to what else the machine
runs), plus the ratios sequential / batch. The decisions of both are checked
to agree. Repeated `--rounds` times, alternating, and the median is reported.
Numbers, not assertions: the machine is shared, so compare ratios within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from route import _wait_ready, free_port, make_prompt

SIZES = (100, 300, 1000, 2000)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(port: int, pid: int, n: int, batch: int, rounds: int) -> dict[str, Any]:
    import grpc

    from routecore.v1 import router_pb2 as pb
    from routecore.v1 import router_pb2_grpc

    prompts = [make_prompt(SIZES[i % len(SIZES)], i) for i in range(n)]
    reqs = [pb.RouteRequest(prompt=p) for p in prompts]
    opts = [("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20)]
    seq: list[tuple[float, float]] = []
    bat: list[tuple[float, float]] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=opts) as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        for r in reqs[:200]:  # warm up both paths
            await stub.Route(r)
        await stub.RouteBatch(pb.RouteBatchRequest(requests=reqs[:batch]))
        models_seq: list[str] = []
        models_bat: list[str] = []
        for _ in range(rounds):
            c0, t0 = cpu_s(pid), time.perf_counter()
            models_seq = [(await stub.Route(r)).model for r in reqs]
            seq.append(((time.perf_counter() - t0) / n, (cpu_s(pid) - c0) / n))
            c0, t0 = cpu_s(pid), time.perf_counter()
            models_bat = []
            for i in range(0, n, batch):
                resp = await stub.RouteBatch(pb.RouteBatchRequest(requests=reqs[i:i + batch]))
                assert not resp.errors, resp.errors[:3]
                models_bat.extend(d.model for d in resp.decisions)
            bat.append(((time.perf_counter() - t0) / n, (cpu_s(pid) - c0) / n))
        agree = sum(a == b for a, b in zip(models_seq, models_bat, strict=True)) / n

    def med(xs: list[tuple[float, float]], k: int) -> float:
        return statistics.median(x[k] for x in xs) * 1e6

    out = {
        "prompts": n, "batch": batch, "rounds": rounds,
        "route_sequential": {"wall_us_per_prompt": round(med(seq, 0), 1),
                             "server_cpu_us_per_prompt": round(med(seq, 1), 1)},
        "route_batch": {"wall_us_per_prompt": round(med(bat, 0), 1),
                        "server_cpu_us_per_prompt": round(med(bat, 1), 1)},
        "same_model_share": round(agree, 4),
        "wall_ratio_per_round": [round(s[0] / b[0], 2) for s, b in zip(seq, bat, strict=True)],
    }
    out["wall_ratio"] = round(med(seq, 0) / med(bat, 0), 2)
    out["server_cpu_ratio"] = round(med(seq, 1) / max(med(bat, 1), 1e-9), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--prompts", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ns = ap.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "routecore.cli", "serve", "--port", str(port), "--workers", "1",
         "--log-level", "warning"], env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(port)
        load0 = os.getloadavg()[0]
        res = asyncio.run(run(port, server.pid, ns.prompts, ns.batch, ns.rounds))
        res["loadavg_1m"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
        res["cores"] = os.cpu_count()
    finally:
        server.kill()  # a bench server: nothing to drain
        server.wait()
    if ns.json:
        print(json.dumps(res, indent=2))
        return
    s, b = res["route_sequential"], res["route_batch"]
    print(f"{res['prompts']} prompts ({'/'.join(map(str, SIZES))} chars), batches of "
          f"{res['batch']}, median of {res['rounds']} rounds")
    print(f"sequential Route: {s['wall_us_per_prompt']:8.1f} us/prompt wall, "
          f"{s['server_cpu_us_per_prompt']:8.1f} us/prompt server CPU")
    print(f"RouteBatch:       {b['wall_us_per_prompt']:8.1f} us/prompt wall, "
          f"{b['server_cpu_us_per_prompt']:8.1f} us/prompt server CPU")
    print(f"ratio (sequential / batch): wall x{res['wall_ratio']} "
          f"(per round {res['wall_ratio_per_round']}), server CPU x{res['server_cpu_ratio']}")
    print(f"same model chosen: {res['same_model_share']:.2%}; load average "
          f"{res['loadavg_1m'][0]} -> {res['loadavg_1m'][1]} on {res['cores']} cores")


if __name__ == "__main__":
    main()
