"""What API keys, budgets and the Redis backend cost a Route: `python bench/auth.py [--json]`.

Three `routecore serve` processes in one run, same prompts, same client:
- plain: the built-in config (memory state, no auth, no budgets);
- auth: the same plus `auth.keys` (every call sends `authorization: Bearer`);
- secured: auth plus `state: {backend: redis}` on a real redis-server started
  here on a free port (/usr/bin/redis-server or PATH) and `budgets` capping the
  key's tenant, user and key, so each Route also reads the caller's budget view.
Route p50/p99 at concurrency 1 and 16, measured in alternating rounds (plain,
auth, secured, plain, ...) so drift on this shared machine hits all alike, and
the ratios to plain (target for secured: <= 1.3x). Also the in-process cost of
one `Authenticator.authenticate` call. Numbers, not assertions.
(`bench/budget.py` measures budget exactness across replicas.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from route import _wait_ready, free_port, make_prompt, pct, summarize

KEY = "rk-bench-0123456789abcdefghijklmnopqrstuvwxyz"


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() \
        else shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server not found (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def bench_config(redis_url: str | None) -> dict[str, Any]:
    """Auth on; with `redis_url`, also the Redis backend and budgets on the key's caller."""
    raw: dict[str, Any] = yaml.safe_load(
        resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["auth"] = {"keys": [{"id": "bench-key", "sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                             "tenant": "acme", "user": "bench"}]}
    if redis_url:
        raw["state"] = {"backend": "redis", "redis_url": redis_url}
        raw["budgets"] = {"tenants": {"acme": {"usd_per_day": 1000.0, "usd_per_month": 10000.0}},
                          "users": {"bench": {"usd_per_day": 100.0}},
                          "keys": {"bench-key": {"tokens_per_day": 10_000_000}},
                          "default": {"usd_per_day": 10.0}}
    return raw


def serve(config: Path | None, state_dir: str) -> tuple[subprocess.Popen[bytes], int]:
    """`routecore serve` on a free port; `state_dir`: this run's audit database, not the user's."""
    port = free_port()
    cmd = [sys.executable, "-m", "routecore.cli", "serve", "--port", str(port),
           "--log-level", "warning"]
    if config is not None:
        cmd += ["--config", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "XDG_STATE_HOME": state_dir})
    _wait_ready(port)
    return proc, port


async def load(port: int, metadata: tuple[tuple[str, str], ...], concurrency: int,
               seconds: float, prompts: list[str]) -> tuple[list[float], int]:
    import grpc

    from routecore.v1 import router_pb2 as pb
    from routecore.v1 import router_pb2_grpc

    lat: list[float] = []
    errors = 0
    reqs = [pb.RouteRequest(prompt=p) for p in prompts]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        route = router_pb2_grpc.RouterStub(ch).Route
        for r in reqs[:20]:
            await route(r, metadata=metadata)
        deadline = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            nonlocal errors
            i = w
            while time.perf_counter() < deadline:
                t0 = time.perf_counter_ns()
                try:
                    await route(reqs[i % len(reqs)], metadata=metadata, timeout=10)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                lat.append((time.perf_counter_ns() - t0) / 1000)
                i += concurrency

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return lat, errors


def authenticate_cost(n: int = 20_000) -> dict[str, float]:
    """Microseconds per authenticate(): a known key (cached), and an unknown one (hashed)."""
    from routecore.errors import Unauthenticated
    from routecore.server.identity import Authenticator, Identity

    auth = Authenticator({hashlib.sha256(KEY.encode()).hexdigest():
                          Identity(key_id="k", tenant="t")})
    header, wrong = f"Bearer {KEY}", f"Bearer {KEY}x"
    t0 = time.perf_counter_ns()
    for _ in range(n):
        auth.authenticate(header)
    cached = (time.perf_counter_ns() - t0) / n / 1000
    t0 = time.perf_counter_ns()
    for _ in range(n):
        with contextlib.suppress(Unauthenticated):
            auth.authenticate(wrong)
    return {"known_key_us": round(cached, 3),
            "unknown_key_us": round((time.perf_counter_ns() - t0) / n / 1000, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds per concurrency")
    ap.add_argument("--seconds", type=float, default=2.0, help="per round and server")
    ap.add_argument("--json", action="store_true")
    ns = ap.parse_args()
    prompts = [make_prompt(2_000, i) for i in range(32)]
    out: dict[str, Any] = {"authenticate": authenticate_cost()}
    with tempfile.TemporaryDirectory() as tmp:
        redis, url = start_redis(Path(tmp))
        bearer = (("authorization", f"Bearer {KEY}"),)
        configs = {"auth": Path(tmp) / "auth.yaml", "secured": Path(tmp) / "secured.yaml"}
        configs["auth"].write_text(yaml.safe_dump(bench_config(None)))
        configs["secured"].write_text(yaml.safe_dump(bench_config(url)))
        servers = {"plain": (*serve(None, tmp), ()), "auth": (*serve(configs["auth"], tmp), bearer),
                   "secured": (*serve(configs["secured"], tmp), bearer)}
        try:
            time.sleep(0.5)
            for conc in (1, 16):
                samples: dict[str, list[float]] = {name: [] for name in servers}
                errors = dict.fromkeys(servers, 0)
                for _ in range(ns.rounds):
                    for name, (_, port, meta) in servers.items():
                        lat, err = asyncio.run(load(port, meta, conc, ns.seconds, prompts))
                        samples[name] += lat
                        errors[name] += err
                res = {name: {**summarize(s), "n": len(s), "errors": errors[name]}
                       for name, s in samples.items()}
                for name in ("auth", "secured"):
                    for q, label in ((0.5, "p50"), (0.99, "p99")):
                        res[f"{name}_ratio_{label}"] = round(
                            pct(samples[name], q) / pct(samples["plain"], q), 3)
                out[f"route_c{conc}"] = res
        finally:
            for proc, _, _ in servers.values():
                proc.terminate()
                proc.wait(10)
            redis.terminate()
            redis.wait(10)
    out["load_avg"] = os.getloadavg()
    if ns.json:
        print(json.dumps(out, indent=2))
        return
    a = out["authenticate"]
    print(f"authenticate(): known key {a['known_key_us']} us, unknown key {a['unknown_key_us']} us")
    for conc in (1, 16):
        r = out[f"route_c{conc}"]
        print(f"Route c{conc}:")
        for name, label in (("plain", "no auth, memory"), ("auth", "auth, memory"),
                            ("secured", "auth + Redis budgets")):
            ratio = "" if name == "plain" else \
                f"  ({r[f'{name}_ratio_p50']}x p50, {r[f'{name}_ratio_p99']}x p99)"
            print(f"  {label:22} p50 {r[name]['p50_us']:7.0f} us  p99 {r[name]['p99_us']:7.0f} us"
                  f"  n={r[name]['n']} errors={r[name]['errors']}{ratio}")
    print(f"load average during the run: {', '.join(f'{x:.1f}' for x in out['load_avg'])}")


if __name__ == "__main__":
    main()
