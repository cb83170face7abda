"""Routing latency, throughput and memory: `python bench/route.py [--json]`.

Measures, in one run:
- in-process decision latency (features, lookup, policy) p50/p99 for prompts of
  100, 2,000 and 20,000 characters, with the compiled core and with its
  pure-Python twin (a child process with ROUTECORE_NO_EXTENSIONS=1), and the
  ratio of the two, for the whole decision and for feature extraction alone;
- with `--learned DIR`: the same for strategy "learned" on that artifact, or
  with `--learned-data FILE.jsonl`: on an artifact trained here from that file's
  records cycled to `--learned-size` (10,000) prompts;
- the Route RPC over loopback against `routecore serve` in separate processes,
  with 2 workers and with 1, against the health Check on the same server (the
  floor gRPC itself costs here): p50/p99 at concurrency 1, throughput at
  concurrency 64 (client load spread over `--client-procs` processes), the
  servers' CPU per call (utime+stime; steadier than latency on a shared
  machine), and RSS. Route and Check alternate `--rounds` times; each ratio is
  reported as median and range over the rounds.
Numbers, not assertions: this machine is noisy, so compare ratios within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZES = (100, 2_000, 20_000)
WORDS = (
    "the model should answer quickly and explain each step of the proof while the code compiles "
    "def function return value matrix integral translate summary because when however therefore "
    "example request latency budget"
).split()


def make_prompt(chars: int, seed: int) -> str:
    rng = random.Random(seed)
    parts: list[str] = []
    n = 0
    while n < chars:
        w = rng.choice(WORDS)
        parts.append(w)
        n += len(w) + 1
    text = " ".join(parts)[: chars - 1]
    return text + "?"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def summarize(samples_us: list[float]) -> dict[str, float]:
    return {"p50_us": round(pct(samples_us, 0.5), 2), "p99_us": round(pct(samples_us, 0.99), 2),
            "mean_us": round(statistics.fmean(samples_us), 2)}


def inproc(iterations: int, learned: str | None) -> dict[str, Any]:
    """Runs in this process with whichever core ROUTECORE_NO_EXTENSIONS selects."""
    from routecore import Router, _fast
    from routecore.config import load_config

    cfg = load_config(None)
    out: dict[str, Any] = {"extensions": _fast.HAVE_EXTENSIONS and
                           os.environ.get("ROUTECORE_NO_EXTENSIONS") != "1"}
    router = Router.from_config(cfg)
    routers = {"default": (router, "")}
    if learned:
        from routecore.routing.learned_model import LearnedRouter

        lr = LearnedRouter.load(learned)
        routers["learned"] = (Router.from_config(cfg_for_learned(lr, learned)), "learned")
    for name, (r, strategy) in routers.items():
        res: dict[str, Any] = {}
        for size in SIZES:
            prompts = [make_prompt(size, i) for i in range(64)]
            n = max(200, iterations // (1 if size <= 2000 else 10))
            for p in prompts[:8]:
                r.route(p, strategy=strategy)
            decide, feats = [], []
            for i in range(n):
                p = prompts[i % len(prompts)]
                t0 = time.perf_counter_ns()
                r.route(p, strategy=strategy)
                decide.append((time.perf_counter_ns() - t0) / 1000)
                t0 = time.perf_counter_ns()
                r.extractor.extract(p)
                feats.append((time.perf_counter_ns() - t0) / 1000)
            res[str(size)] = {"decision": summarize(decide), "features": summarize(feats), "n": n}
        out[name] = res
    return out


def cfg_for_learned(lr: Any, artifact: str) -> Any:
    """A config whose registry holds the artifact's models, routing learned by default."""
    from importlib import resources

    import yaml

    from routecore.config import parse_config

    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["classifier"]["feature_dim"] = lr.dim  # one feature extraction serves both
    template = raw["models"]["gpt-4o-mini"]
    raw["models"] = {m: {**template, "provider": "data", "model_id": m, "fallbacks": [],
                         "deployments": []} for m in lr.models}
    raw["routing"] = {"default_strategy": "learned",
                      "learned": {"artifact": artifact, "willingness_to_pay": 0.5}}
    return parse_config(raw)


def train_learned(data: str, size: int, out: Path) -> str:
    """Train an artifact on `size` prompts: the file's records, cycled with fresh ids."""
    from routecore.learned.train import train

    with open(data, encoding="utf-8") as f:  # not splitlines(): prompts hold U+2028
        records = [json.loads(line) for line in f if line.strip()]
    cycled = out / "train.jsonl"
    with cycled.open("w") as f:
        for i in range(size):
            rec = dict(records[i % len(records)])
            rec["id"] = f"{rec['id']}#{i // len(records)}"
            f.write(json.dumps(rec) + "\n")
    train([cycled], out / "artifact", progress=False)
    return str(out / "artifact")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [int(x) for x in out.split()]


async def _client(port: int, concurrency: int, seconds: float, prompt: str,
                  method: str = "route") -> dict[str, Any]:
    """Load one RPC: Route, or the health Check (an empty handler on the same server:
    the floor that gRPC itself costs on this machine)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from routecore.v1 import router_pb2 as pb
    from routecore.v1 import router_pb2_grpc

    lat: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        if method == "route":
            call, req = router_pb2_grpc.RouterStub(ch).Route, pb.RouteRequest(prompt=prompt)
        else:
            call, req = health_pb2_grpc.HealthStub(ch).Check, health_pb2.HealthCheckRequest()
        for _ in range(50):
            await call(req)
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter_ns()
                try:
                    await call(req, timeout=10)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                lat.append((time.perf_counter_ns() - t0) / 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {"n": len(lat), "errors": errors, "elapsed_s": elapsed, "lat_us": lat}


def client_proc(port: int, concurrency: int, seconds: float, prompt: str, method: str) -> None:
    res = asyncio.run(_client(port, concurrency, seconds, prompt, method))
    print(json.dumps(res))


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _load(port: int, method: str, seconds: float, prompt: str, client_procs: int,
          pids: list[int]) -> dict[str, Any]:
    """One phase: c=1 latency, then c=64 throughput, with the server's CPU per call."""
    t0 = cpu_s(pids)
    c1 = asyncio.run(_client(port, 1, seconds, prompt, method))
    cpu1 = cpu_s(pids) - t0
    procs = [subprocess.Popen([sys.executable, __file__, "--_client", str(port),
                               str(64 // client_procs), str(seconds), method],
                              stdout=subprocess.PIPE, text=True)
             for _ in range(client_procs)]
    t0 = cpu_s(pids)
    results = [json.loads(p.communicate()[0]) for p in procs]
    cpu64 = cpu_s(pids) - t0
    total = sum(r["n"] for r in results)
    lat64 = [x for r in results for x in r["lat_us"]]
    return {
        "concurrency_1": {**summarize(c1["lat_us"]), "errors": c1["errors"],
                          "per_s": round(c1["n"] / c1["elapsed_s"], 1),
                          "server_cpu_us_per_call": round(1e6 * cpu1 / max(1, c1["n"]), 1)},
        "concurrency_64": {**summarize(lat64), "errors": sum(r["errors"] for r in results),
                           "per_s": round(total / max(r["elapsed_s"] for r in results), 1),
                           "client_procs": client_procs,
                           "server_cpu_us_per_call": round(1e6 * cpu64 / max(1, total), 1)},
    }


def rpc_bench(workers: int, seconds: float, client_procs: int, rounds: int) -> dict[str, Any]:
    """Route and the health Check alternately on one server, `rounds` times: each round's
    ratios, and their median and range (the spread says how noisy the machine was)."""
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="rc-bench-")
    # A fresh state directory: the audit database is this run's, not the user's.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_STATE_HOME": tmp}
    server = subprocess.Popen(
        [sys.executable, "-m", "routecore.cli", "serve", "--port", str(port), "--workers",
         str(workers), "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        _wait_ready(port)
        time.sleep(1.0 if workers > 1 else 0.2)
        pids = [server.pid, *children(server.pid)]
        prompt = make_prompt(2_000, 7)
        out: dict[str, Any] = {"workers": workers, "rounds": []}
        for _ in range(rounds):
            rnd = {m: _load(port, m, seconds, prompt, client_procs, pids)
                   for m in ("route", "health")}
            r1, h1 = rnd["route"]["concurrency_1"], rnd["health"]["concurrency_1"]
            r64, h64 = rnd["route"]["concurrency_64"], rnd["health"]["concurrency_64"]
            rnd["route_over_health"] = {
                "c1_p50": round(r1["p50_us"] / h1["p50_us"], 2),
                "c1_p99": round(r1["p99_us"] / h1["p99_us"], 2),
                "c64_throughput": round(r64["per_s"] / h64["per_s"], 2),
                "c64_server_cpu": round(r64["server_cpu_us_per_call"]
                                        / max(h64["server_cpu_us_per_call"], 1e-9), 2),
            }
            out["rounds"].append(rnd)
        out["rss_mb"] = {str(p): round(rss_mb(p), 1) for p in pids}
        ratios = [r["route_over_health"] for r in out["rounds"]]
        out["route_over_health"] = {
            k: {"median": round(statistics.median(x[k] for x in ratios), 2),
                "min": min(x[k] for x in ratios), "max": max(x[k] for x in ratios)}
            for k in ratios[0]}
        return out
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def _wait_ready(port: int) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError:
            time.sleep(0.2)
    raise RuntimeError("server did not become ready")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_client":
        client_proc(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]),
                    make_prompt(2_000, 7), sys.argv[5])
        return
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=5.0, help="per RPC load phase")
    ap.add_argument("--workers", type=int, default=2, help="serving processes for the RPC phase")
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3,
                    help="Route/Check alternations per server (ratios: median and range)")
    ap.add_argument("--learned", default=None, help="a trained artifact dir to bench too")
    ap.add_argument("--learned-data", default=None,
                    help="train an artifact from this JSONL (cycled to --learned-size prompts)")
    ap.add_argument("--learned-size", type=int, default=10_000)
    ap.add_argument("--skip-rpc", action="store_true")
    ap.add_argument("--_inproc", action="store_true", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns._inproc:
        print(json.dumps(inproc(ns.iterations, ns.learned)))
        return
    report: dict[str, Any] = {}
    if ns.learned_data and not ns.learned:
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix="routecore-bench-"))
        ns.learned = train_learned(ns.learned_data, ns.learned_size, tmp)
        report["learned_artifact"] = {"path": ns.learned, "prompts": ns.learned_size}
    for label, extra_env in (("cython", {}), ("pure_python", {"ROUTECORE_NO_EXTENSIONS": "1"})):
        cmd = [sys.executable, __file__, "--_inproc", "--iterations",
               str(ns.iterations if label == "cython" else max(300, ns.iterations // 10))]
        if ns.learned:
            cmd += ["--learned", ns.learned]
        out = subprocess.run(cmd, env={**os.environ, **extra_env}, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        report[label] = json.loads(out.stdout)
    ratios: dict[str, Any] = {}
    for size in map(str, SIZES):
        c, p = report["cython"]["default"][size], report["pure_python"]["default"][size]

        ratios[size] = {
            "features_p50_speedup": round(p["features"]["p50_us"] / c["features"]["p50_us"], 1),
            "decision_p50_speedup": round(p["decision"]["p50_us"] / c["decision"]["p50_us"], 1),
        }
    report["speedup_cython_over_pure"] = ratios
    if not ns.skip_rpc:
        report["rpc"] = rpc_bench(ns.workers, ns.seconds, ns.client_procs, ns.rounds)
        if ns.workers > 1:
            report["rpc_single_worker"] = rpc_bench(1, ns.seconds, ns.client_procs, ns.rounds)
    if ns.json:
        print(json.dumps(report, indent=2))
        return
    for label in ("cython", "pure_python"):
        for name, res in report[label].items():
            if name == "extensions":
                continue
            for size, r in res.items():
                d, f = r["decision"], r["features"]
                print(f"{label:12} {name:8} {size:>6} chars: decision p50 {d['p50_us']:8.1f} us "
                      f"p99 {d['p99_us']:8.1f} us | features p50 {f['p50_us']:8.1f} us")
    for size, r in ratios.items():
        print(f"speedup {size:>6} chars: features x{r['features_p50_speedup']}, "
              f"decision x{r['decision_p50_speedup']}")
    for key in ("rpc", "rpc_single_worker"):
        if key not in report:
            continue
        r = report[key]
        for i, rnd in enumerate(r["rounds"]):
            for method in ("route", "health"):
                c1, c64 = rnd[method]["concurrency_1"], rnd[method]["concurrency_64"]
                print(f"{key} ({r['workers']} workers) round {i} {method:6}: c=1 p50 "
                      f"{c1['p50_us']:.0f} us p99 {c1['p99_us']:.0f} us; c=64 {c64['per_s']:.0f}/s "
                      f"p50 {c64['p50_us']:.0f} us, server CPU {c64['server_cpu_us_per_call']:.0f} "
                      f"us/call; errors {c1['errors'] + c64['errors']}")
        print(f"  route/health over {len(r['rounds'])} rounds, median (min-max): " + "; ".join(
            f"{k} x{v['median']} ({v['min']}-{v['max']})" for k, v in r["route_over_health"].items()))
        print(f"  RSS MB {r['rss_mb']}")
    d = report["cython"]["default"]["2000"]["decision"]
    print(f"targets: in-process decision at 2,000 chars p50 {d['p50_us']} us (<= 20), "
          f"p99 {d['p99_us']} us (<= 60)", end="")
    if "learned" in report["cython"]:
        print(f"; learned p99 {report['cython']['learned']['2000']['decision']['p99_us']} us "
              "(<= 150)", end="")
    print()
    for key in ("rpc", "rpc_single_worker"):
        if key in report:
            m = {k: v["median"] for k, v in report[key]["route_over_health"].items()}
            print(f"targets ({report[key]['workers']} workers): Route/Check c=1 p50 x{m['c1_p50']} "
                  f"(<= 1.25), p99 x{m['c1_p99']} (<= 1.5), c=64 throughput x{m['c64_throughput']} "
                  "(>= 0.8)")


if __name__ == "__main__":
    main()
