"""Benchmark Complete: added latency over a direct HTTP call, throughput, TTFT, HTTP clients.

    pip install -e '.[test]'        # httpx, for the HTTP-client comparison
    python bench/complete.py [--json] [--workers 2] [--n1 200] [--n64 1280] [--upstream-ms 0]

The other gateways run from their own virtualenvs (their dependency pins are not
ours), each skipped with a message when absent:

    python -m venv /tmp/litellm && /tmp/litellm/bin/pip install 'litellm[proxy]==1.106.12'
    python -m venv /tmp/tz && /tmp/tz/bin/pip install tensorzero
    python bench/complete.py --litellm /tmp/litellm/bin/litellm --tensorzero-python /tmp/tz/bin/python

Everything runs on 127.0.0.1 with bounded request counts:

1. the simulated upstream (`routecore sim-provider` equivalent) in a subprocess;
2. aiohttp vs httpx straight to it at concurrency 16 (the client choice);
3. the routecore gRPC server (`routecore.server.app.serve`) in a subprocess whose
   endpoints all point at that upstream (kind openai), measured with a grpc.aio
   client against a direct aiohttp call with the same body: p50/p99 at
   concurrency 1 and 64, throughput, and streaming time-to-first-token;
4. a LiteLLM proxy (`litellm --config ... --port N`) in front of the same
   upstream, when the `litellm` command is installed (or given by --litellm);
5. TensorZero's gateway (the Rust gateway built into the `tensorzero` wheel,
   observability off) in front of the same upstream, over its OpenAI-compatible
   HTTP API, when --tensorzero-python (or this interpreter) can import it;
6. routecore's OpenAI-compatible HTTP front door (`serve --http-port`, same
   processes) against the same direct call, HTTP to HTTP (pinned to the routed
   model, and `model: "auto"` at concurrency 1), its streaming TTFT, and the
   server CPU per request over HTTP and over gRPC (a busy machine distorts CPU
   time far less than throughput); the other gateways' added latency is also
   stated against routecore HTTP's (both HTTP to HTTP);
7. the Route RPC on the same server, same prompt: the targets are stated
   against its p50 (Complete's added p50 and streaming TTFT <= 1.5x), and the
   other gateways' added latency against routecore's (>= 10x), all same run.

The machine is small and noisy: compare numbers within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "What is the capital of Australia?"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def _run(fn: Callable[[], Awaitable[float | None]], n: int,
               conc: int) -> tuple[list[float], float]:
    """Latencies (ms) of `fn` run n times by `conc` workers, and the wall time (s)."""
    lat: list[float] = []
    todo = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            t0 = time.perf_counter()
            got = await fn()
            lat.append(1000 * (got if got is not None else time.perf_counter() - t0))

    for _ in range(min(20, n)):  # warm up connections and caches
        await fn()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return lat, time.perf_counter() - t0


def _summary(ms: list[float], wall: float, conc: int) -> dict[str, float]:
    return {"n": len(ms), "concurrency": conc, "p50_ms": round(pct(ms, 0.5), 3),
            "p99_ms": round(pct(ms, 0.99), 3), "mean_ms": round(statistics.fmean(ms), 3),
            "rps": round(len(ms) / wall, 1)}


async def measure(fn: Callable[[], Awaitable[float | None]], n: int, conc: int) -> dict[str, float]:
    """Run `fn` n times with `conc` workers; fn returns its own latency (or None to time it)."""
    return _summary(*await _run(fn, n, conc), conc)


async def paired(direct: Callable[[], Awaitable[None]], other: Callable[[], Awaitable[None]],
                 n: int, conc: int, name: str, chunks: int = 4) -> dict[str, Any]:
    """The direct call and `other` in alternating chunks, so a burst of load from the
    rest of the machine hits both alike; what `other` adds over the direct call."""
    got: dict[str, tuple[list[float], float]] = {"d": ([], 0.0), "o": ([], 0.0)}
    for _ in range(chunks):
        for key, fn in (("d", direct), ("o", other)):
            ms, wall = await _run(fn, max(1, n // chunks), conc)
            got[key] = (got[key][0] + ms, got[key][1] + wall)
    return versus(_summary(*got["d"], conc), _summary(*got["o"], conc), name)


@contextlib.contextmanager
def spawn(argv: list[str], env: dict[str, str] | None = None,
          grace: float = 5.0) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` quietly for the block; terminate it after (kill if it outlives `grace`)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def versus(direct: dict[str, float], other: dict[str, float], name: str) -> dict[str, Any]:
    """Two measurements side by side with what `name` adds over the direct call."""
    return {"direct_http": direct, name: other,
            "added_p50_ms": round(other["p50_ms"] - direct["p50_ms"], 3),
            "added_p99_ms": round(other["p99_ms"] - direct["p99_ms"], 3)}


async def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with s.get(url) as r:
                    if r.status < 500:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def write_configs(tmp: Path, sim_url: str, upstream_ms: float) -> tuple[Path, Path]:
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    sim = dict(raw)
    sim["models"] = {k: {**v, "sim": {"latency_ms": {"p50": upstream_ms, "p95": upstream_ms}}}
                     for k, v in raw["models"].items()}
    (tmp / "sim.yaml").write_text(yaml.safe_dump(sim))
    svc = dict(raw)
    svc["endpoints"] = {k: {"kind": "openai", "base_url": sim_url, "timeout_s": 30,
                            "max_connections": 256} for k in raw["endpoints"]}
    svc["resilience"] = {"rate_limit": {"enabled": False}}
    (tmp / "svc.yaml").write_text(yaml.safe_dump(svc))
    return tmp / "sim.yaml", tmp / "svc.yaml"


def chat_body(model: str, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}],
                            "max_tokens": 512, "temperature": 0.0}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


async def bench_clients(url: str, model: str, n: int) -> dict[str, Any]:
    """aiohttp vs httpx, same upstream, concurrency 16."""
    import httpx

    body = chat_body(model)
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:
        async def a() -> None:
            async with s.post(url, json=body) as r:
                await r.read()
        out["aiohttp"] = await measure(a, n, 16)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits) as c:
        async def h() -> None:
            (await c.post(url, json=body)).read()
        out["httpx"] = await measure(h, n, 16)
    out["aiohttp_speedup"] = round(out["aiohttp"]["rps"] / out["httpx"]["rps"], 2)
    return out


async def direct_ttft(s: aiohttp.ClientSession, url: str, model: str) -> float:
    t0 = time.perf_counter()
    async with s.post(url, json=chat_body(model, stream=True)) as r:
        async for line in r.content:
            if line.startswith(b"data: {") and b'"content": "' in line and \
                    b'"content": ""' not in line:
                ttft = time.perf_counter() - t0
                await r.read()
                return ttft
    raise RuntimeError("no content chunk")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import grpc

    from routecore.v1 import router_pb2 as pb
    from routecore.v1 import router_pb2_grpc as pbg

    results: dict[str, Any] = {"host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                               "upstream_ms": args.upstream_ms}
    tmp = Path(tempfile.mkdtemp(prefix="rc-bench-"))
    sim_port, grpc_port, http_port = free_port(), free_port(), free_port()
    sim_url = f"http://{HOST}:{sim_port}"
    sim_cfg, svc_cfg = write_configs(tmp, sim_url, args.upstream_ms)
    # A fresh state directory: the server's audit database is this run's, not the user's.
    env = {"PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "XDG_STATE_HOME": str(tmp / "state")}
    sim_code = ("from routecore.config import load_config;"
                "from routecore.calling.providers.sim_server import run_sim_server;"
                f"run_sim_server({HOST!r}, {sim_port}, load_config({str(sim_cfg)!r}))")
    # The service runs exactly as `routecore serve` does (uvloop, structlog configured);
    # warning level turns the per-request access line off, as LiteLLM's is at ERROR.
    srv_argv = [sys.executable, "-m", "routecore.cli", "serve", "--config", str(svc_cfg),
                "--host", HOST, "--port", str(grpc_port), "--log-level", "warning",
                "--workers", str(args.workers), "--http-port", str(http_port)]
    results["workers"] = args.workers
    chat_url = f"{sim_url}/v1/chat/completions"
    with spawn(python(sim_code), env), spawn(srv_argv, env) as srv:
        await wait_http(f"{sim_url}/health")
        async with grpc.aio.insecure_channel(f"{HOST}:{grpc_port}") as ch:
            await asyncio.wait_for(ch.channel_ready(), 60)
            stub = pbg.RouterStub(ch)
            req = pb.CompleteRequest(route=pb.RouteRequest(prompt=PROMPT))
            first = await stub.Complete(req, timeout=30)
            model_id = first.model  # the routed model: the direct call asks the same one
            results["routed_model"] = model_id
            results["clients_c16"] = await bench_clients(chat_url, model_id, args.n_clients)

            async def grpc_call() -> None:
                await stub.Complete(req, timeout=30)

            route_req = pb.RouteRequest(prompt=PROMPT)

            async def route_call() -> None:
                await stub.Route(route_req, timeout=30)

            # The yardstick of the targets: one Route RPC on the same server and channel.
            results["route_c1"] = await measure(route_call, args.n1, 1)

            async def grpc_ttft() -> float:
                t0 = time.perf_counter()
                ttft = None
                async for chunk in stub.CompleteStream(req, timeout=30):
                    if chunk.delta and ttft is None:
                        ttft = time.perf_counter() - t0
                if ttft is None:
                    raise RuntimeError("no delta")
                return ttft

            conn = aiohttp.TCPConnector(limit=128)
            async with aiohttp.ClientSession(connector=conn) as s:
                async def direct() -> None:
                    async with s.post(chat_url, json=chat_body(model_id)) as r:
                        await r.read()

                async def d_ttft() -> float:
                    return await direct_ttft(s, chat_url, model_id)

                for conc, n in ((1, args.n1), (16, args.n16), (64, args.n64)):
                    results[f"c{conc}"] = await paired(direct, grpc_call, n, conc,
                                                       "routecore_grpc")
                dt = await measure(d_ttft, args.n_stream, 1)
                gt = await measure(grpc_ttft, args.n_stream, 1)
                results["stream_ttft_c1"] = {"direct_http": dt, "routecore_grpc": gt,
                                             "added_p50_ms": round(gt["p50_ms"] - dt["p50_ms"], 3)}
                results["routecore_http"] = await bench_http(
                    args, f"http://{HOST}:{http_port}/v1/chat/completions", model_id, s, direct,
                    dt, srv.pid, grpc_call)
                results["litellm"] = await bench_litellm(args, tmp, sim_url, model_id, s, direct)
                results["tensorzero"] = await bench_tensorzero(args, tmp, sim_url, model_id, s,
                                                               direct)
    results["targets"] = {**targets(results), **http_targets(results)}
    return results


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time so far of these processes (Linux /proc; gone ones count 0)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def server_pids(pid: int) -> list[int]:
    """`routecore serve` and its --workers children."""
    with contextlib.suppress(OSError):
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [pid, *map(int, kids)]
    return [pid]


async def bench_http(args: argparse.Namespace, url: str, model_id: str,
                     s: aiohttp.ClientSession, direct: Callable[[], Awaitable[None]],
                     direct_ttft_c1: dict[str, float], server_pid: int,
                     grpc_call: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    """routecore's HTTP front door against the direct call (pinned at c1/c16/c64, "auto"
    at c1), its streaming TTFT, and server CPU per request over HTTP and over gRPC."""
    async def call(body: dict[str, Any]) -> None:
        async with s.post(url, json=body) as r:
            await r.read()
            if r.status != 200:
                raise RuntimeError(f"routecore HTTP {r.status}")

    pinned, auto = chat_body(model_id), chat_body("auto")
    out: dict[str, Any] = {}
    for conc, n in ((1, args.n1), (16, args.n16), (64, args.n64)):
        out[f"c{conc}"] = await paired(direct, lambda: call(pinned), n, conc, "routecore_http")
    out["auto_c1"] = await paired(direct, lambda: call(auto), args.n1, 1, "routecore_http")
    t = await measure(lambda: direct_ttft(s, url, model_id), args.n_stream, 1)
    out["stream_ttft_c1"] = {"direct_http": direct_ttft_c1, "routecore_http": t,
                             "added_p50_ms": round(t["p50_ms"] - direct_ttft_c1["p50_ms"], 3)}
    pids = server_pids(server_pid)
    cpu: dict[str, float] = {}
    for name, fn in (("http", lambda: call(pinned)), ("grpc", grpc_call)):
        c0 = cpu_seconds(pids)
        await measure(fn, args.n16, 16)
        cpu[name] = round(1e6 * (cpu_seconds(pids) - c0) / (args.n16 + 20), 1)
    out["server_cpu_us_per_request_c16"] = cpu
    return out


def http_targets(r: dict[str, Any]) -> dict[str, Any]:
    """The other gateways' added latency over routecore HTTP's (HTTP to HTTP), same run."""
    http = r.get("routecore_http", {})
    out: dict[str, Any] = {}
    for name in ("litellm", "tensorzero"):
        other = r.get(name, {})
        for c in ("c1", "c16", "c64"):
            if c in other and c in http:
                for q in ("p50", "p99"):
                    ours = max(http[c][f"added_{q}_ms"], 1e-3)
                    out[f"{name}_added_{q}_{c}_over_routecore_http"] = round(
                        other[c][f"added_{q}_ms"] / ours, 2)
    return out


def targets(r: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets as ratios of numbers measured in this run."""
    route = r["route_c1"]["p50_ms"]
    out: dict[str, Any] = {
        "route_p50_ms": route,
        "complete_added_p50_c1_over_route_p50": round(r["c1"]["added_p50_ms"] / route, 2),
        "ttft_added_p50_over_route_p50": round(r["stream_ttft_c1"]["added_p50_ms"] / route, 2),
        "complete_c64_rps": r["c64"]["routecore_grpc"]["rps"],
    }
    for name in ("litellm", "tensorzero"):
        other = r.get(name, {})
        for c in ("c1", "c16", "c64"):
            if c not in other:
                continue
            for q in ("p50", "p99"):
                ours, theirs = r[c][f"added_{q}_ms"], other[c][f"added_{q}_ms"]
                # An added latency at or below 0 is noise beating the signal: no ratio.
                out[f"{name}_added_{q}_{c}_over_routecore"] = (
                    round(theirs / ours, 2) if ours > 0 and theirs > 0 else "n/a (noise)")
    return out


async def bench_litellm(args: argparse.Namespace, tmp: Path, sim_url: str, model_id: str,
                        s: aiohttp.ClientSession,
                        direct: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    exe = args.litellm or shutil.which("litellm")
    if exe is None or args.no_litellm:
        msg = ("skipped: no litellm command (python -m venv /tmp/litellm && /tmp/litellm/bin/pip "
               "install 'litellm[proxy]==1.106.12', then --litellm /tmp/litellm/bin/litellm)")
        print(msg, file=sys.stderr)
        return {"skipped": msg}
    port = free_port()
    master = f"sk-{secrets.token_hex(32)}"  # per-run throwaway: the proxy refuses to start without
    cfg = {"model_list": [{"model_name": "bench", "litellm_params": {
        "model": f"openai/{model_id}", "api_base": f"{sim_url}/v1", "api_key": "sk-bench"}}],
        "litellm_settings": {"telemetry": False, "drop_params": True},
        "general_settings": {"master_key": master}}
    (tmp / "litellm.yaml").write_text(yaml.safe_dump(cfg))
    argv = [exe, "--config", str(tmp / "litellm.yaml"), "--port", str(port), "--host", HOST,
            "--num_workers", "1"]
    try:
        with spawn(argv, {"LITELLM_LOG": "ERROR"}, grace=10.0):
            await wait_http(f"http://{HOST}:{port}/health/liveliness", timeout=120)
            url = f"http://{HOST}:{port}/v1/chat/completions"
            body = {**chat_body("bench")}
            headers = {"authorization": f"Bearer {master}"}

            async def call() -> None:
                async with s.post(url, json=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"litellm HTTP {r.status}")

            out: dict[str, Any] = {}
            for conc, n in ((1, args.n1), (16, args.n16), (64, args.n64)):
                try:
                    out[f"c{conc}"] = await paired(direct, call, n, conc, "litellm")
                except (aiohttp.ClientError, RuntimeError) as exc:  # keep what was measured
                    out[f"c{conc}_error"] = f"{type(exc).__name__}: {exc}"
                    break
            return out
    except Exception as exc:  # report, do not abort the routecore numbers
        return {"error": f"{type(exc).__name__}: {exc}"}


_TZ_CONFIG = """
[gateway]
observability.enabled = false

[models.bench]
routing = ["sim"]

[models.bench.providers.sim]
type = "openai"
model_name = "{model}"
api_base = "{base}/v1/"
api_key_location = "none"
"""
# Starts the HTTP gateway built into the tensorzero wheel; prints its base URL.
_TZ_RUN = ("import sys, time, tensorzero\n"
           "gw = tensorzero._start_http_gateway(config_file=sys.argv[1], clickhouse_url=None, "
           "postgres_url=None, valkey_url=None, async_setup=False)\n"
           "print(gw.base_url, flush=True)\n"
           "time.sleep(1e9)\n")


async def bench_tensorzero(args: argparse.Namespace, tmp: Path, sim_url: str, model_id: str,
                           s: aiohttp.ClientSession,
                           direct: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    exe = args.tensorzero_python or sys.executable
    probe = subprocess.run([exe, "-c", "import tensorzero"], capture_output=True)
    if probe.returncode != 0 or args.no_tensorzero:
        msg = ("skipped: no python with tensorzero (python -m venv /tmp/tz && /tmp/tz/bin/pip "
               "install tensorzero, then --tensorzero-python /tmp/tz/bin/python)")
        print(msg, file=sys.stderr)
        return {"skipped": msg}
    cfg = tmp / "tensorzero.toml"
    cfg.write_text(_TZ_CONFIG.format(model=model_id, base=sim_url))
    proc = subprocess.Popen([exe, "-c", _TZ_RUN, str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = ""
        for _ in range(100):  # the gateway logs to stdout before the URL is printed
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 120)
            if not line or line.startswith("http"):
                break
        if not line.startswith("http"):
            return {"error": "the tensorzero gateway did not start"}
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
        url = line.strip() + "/chat/completions"
        body = chat_body("tensorzero::model_name::bench")

        async def call() -> None:
            async with s.post(url, json=body) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"tensorzero HTTP {r.status}")

        out: dict[str, Any] = {}
        for conc, n in ((1, args.n1), (16, args.n16), (64, args.n64)):
            try:
                out[f"c{conc}"] = await paired(direct, call, n, conc, "tensorzero")
            except (aiohttp.ClientError, RuntimeError) as exc:  # keep what was measured
                out[f"c{conc}_error"] = f"{type(exc).__name__}: {exc}"
                break
        return out
    except Exception as exc:  # report, do not abort the routecore numbers
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--n1", type=int, default=200, help="requests at concurrency 1")
    ap.add_argument("--n16", type=int, default=640, help="requests at concurrency 16")
    ap.add_argument("--n64", type=int, default=1280, help="requests at concurrency 64")
    ap.add_argument("--n-clients", type=int, default=800, help="requests per HTTP client")
    ap.add_argument("--n-stream", type=int, default=100, help="streams for TTFT")
    ap.add_argument("--upstream-ms", type=float, default=0.0, help="simulated upstream latency")
    ap.add_argument("--workers", type=int, default=2, help="routecore serving processes")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--litellm", default=None, help="the litellm command (default: on PATH)")
    ap.add_argument("--no-tensorzero", action="store_true")
    ap.add_argument("--tensorzero-python", default=None,
                    help="a python that can import tensorzero (default: this one)")
    args = ap.parse_args()
    res = asyncio.run(run(args))
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"routed model: {res['routed_model']}   upstream latency: {args.upstream_ms} ms")
    cl = res["clients_c16"]
    print(f"HTTP client @16: aiohttp {cl['aiohttp']['rps']} rps p50 {cl['aiohttp']['p50_ms']} ms"
          f" | httpx {cl['httpx']['rps']} rps p50 {cl['httpx']['p50_ms']} ms"
          f" | aiohttp x{cl['aiohttp_speedup']}")
    for c in ("c1", "c16", "c64"):
        r = res[c]
        d, g = r["direct_http"], r["routecore_grpc"]
        print(f"{c}: direct p50 {d['p50_ms']} p99 {d['p99_ms']} ({d['rps']} rps) | routecore "
              f"p50 {g['p50_ms']} p99 {g['p99_ms']} ({g['rps']} rps) | added p50 "
              f"{r['added_p50_ms']} ms p99 {r['added_p99_ms']} ms")
    t = res["stream_ttft_c1"]
    print(f"stream TTFT c1: direct {t['direct_http']['p50_ms']} ms, routecore "
          f"{t['routecore_grpc']['p50_ms']} ms, added {t['added_p50_ms']} ms")
    h = res["routecore_http"]
    for c in ("c1", "c16", "c64", "auto_c1"):
        r = h[c]
        d, g = r["direct_http"], r["routecore_http"]
        print(f"http {c}: direct p50 {d['p50_ms']} p99 {d['p99_ms']} ({d['rps']} rps) | "
              f"routecore HTTP p50 {g['p50_ms']} p99 {g['p99_ms']} ({g['rps']} rps) | "
              f"added p50 {r['added_p50_ms']} ms p99 {r['added_p99_ms']} ms")
    print(f"http stream TTFT c1: added {h['stream_ttft_c1']['added_p50_ms']} ms; server CPU "
          f"per request @16 (us): {json.dumps(h['server_cpu_us_per_request_c16'])}")
    for name in ("litellm", "tensorzero"):
        other = res[name]
        if "c1" not in other:
            print(f"{name}:", json.dumps(other))
            continue
        for c in ("c1", "c16", "c64"):
            if c not in other:
                print(f"{name} {c}: {other.get(c + '_error', 'not measured')}")
                continue
            r = other[c]
            print(f"{name} {c}: p50 {r[name]['p50_ms']} p99 {r[name]['p99_ms']} "
                  f"({r[name]['rps']} rps) | added p50 {r['added_p50_ms']} ms "
                  f"p99 {r['added_p99_ms']} ms")
    print(f"route RPC c1 p50 {res['route_c1']['p50_ms']} ms (workers {res['workers']}); targets:")
    for k, v in res["targets"].items():
        print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
