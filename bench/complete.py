"""Benchmark Complete: added latency over a direct HTTP call, throughput, TTFT, HTTP clients.

    python bench/complete.py [--json] [--n1 200] [--n64 1280] [--upstream-ms 0]

Everything runs on 127.0.0.1 with bounded request counts:

1. the simulated upstream (`routecore sim-provider` equivalent) in a subprocess;
2. aiohttp vs httpx straight to it at concurrency 16 (the client choice);
3. the routecore gRPC server (`routecore.server.app.serve`) in a subprocess whose
   endpoints all point at that upstream (kind openai), measured with a grpc.aio
   client against a direct aiohttp call with the same body: p50/p99 at
   concurrency 1 and 64, throughput, and streaming time-to-first-token;
4. a LiteLLM proxy (`litellm --config ... --port N`) in front of the same
   upstream, when the `litellm` command is installed; skipped with a message
   otherwise.

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


async def measure(fn: Callable[[], Awaitable[float | None]], n: int, conc: int) -> dict[str, float]:
    """Run `fn` n times with `conc` workers; fn returns its own latency (or None to time it)."""
    lat: list[float] = []
    todo = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            t0 = time.perf_counter()
            got = await fn()
            lat.append(got if got is not None else time.perf_counter() - t0)

    for _ in range(min(20, n)):  # warm up connections and caches
        await fn()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    wall = time.perf_counter() - t0
    ms = [x * 1000 for x in lat]
    return {"n": n, "concurrency": conc, "p50_ms": round(pct(ms, 0.5), 3),
            "p99_ms": round(pct(ms, 0.99), 3), "mean_ms": round(statistics.fmean(ms), 3),
            "rps": round(n / wall, 1)}


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
    sim_port, grpc_port = free_port(), free_port()
    sim_url = f"http://{HOST}:{sim_port}"
    sim_cfg, svc_cfg = write_configs(tmp, sim_url, args.upstream_ms)
    env = {"PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    sim_code = ("from routecore.config import load_config;"
                "from routecore.calling.providers.sim_server import run_sim_server;"
                f"run_sim_server({HOST!r}, {sim_port}, load_config({str(sim_cfg)!r}))")
    # The service runs exactly as `routecore serve` does (uvloop, structlog configured);
    # warning level turns the per-request access line off, as LiteLLM's is at ERROR.
    srv_argv = [sys.executable, "-m", "routecore.cli", "serve", "--config", str(svc_cfg),
                "--host", HOST, "--port", str(grpc_port), "--log-level", "warning"]
    chat_url = f"{sim_url}/v1/chat/completions"
    with spawn(python(sim_code), env), spawn(srv_argv, env):
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
                    results[f"c{conc}"] = versus(await measure(direct, n, conc),
                                                 await measure(grpc_call, n, conc),
                                                 "routecore_grpc")
                dt = await measure(d_ttft, args.n_stream, 1)
                gt = await measure(grpc_ttft, args.n_stream, 1)
                results["stream_ttft_c1"] = {"direct_http": dt, "routecore_grpc": gt,
                                             "added_p50_ms": round(gt["p50_ms"] - dt["p50_ms"], 3)}
                results["litellm"] = await bench_litellm(args, tmp, sim_url, model_id, s, direct)
    return results


async def bench_litellm(args: argparse.Namespace, tmp: Path, sim_url: str, model_id: str,
                        s: aiohttp.ClientSession,
                        direct: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    exe = shutil.which("litellm")
    if exe is None or args.no_litellm:
        msg = "skipped: litellm is not installed (pip install 'litellm[proxy]')"
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
                out[f"c{conc}"] = versus(await measure(direct, n, conc),
                                         await measure(call, n, conc), "litellm")
            return out
    except Exception as exc:  # report, do not abort the routecore numbers
        return {"error": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--n1", type=int, default=200, help="requests at concurrency 1")
    ap.add_argument("--n16", type=int, default=640, help="requests at concurrency 16")
    ap.add_argument("--n64", type=int, default=1280, help="requests at concurrency 64")
    ap.add_argument("--n-clients", type=int, default=800, help="requests per HTTP client")
    ap.add_argument("--n-stream", type=int, default=100, help="streams for TTFT")
    ap.add_argument("--upstream-ms", type=float, default=0.0, help="simulated upstream latency")
    ap.add_argument("--no-litellm", action="store_true")
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
    print("litellm:", json.dumps(res["litellm"]))


if __name__ == "__main__":
    main()
