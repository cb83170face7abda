"""Cost of the audit trail and metrics on Route: `python bench/audit.py [--json]`.

In one run, alternating rounds of the same load against `routecore serve`
with audit + metrics off (`audit: {enabled: false}`, no metrics port) and on
(SQLite audit in a temp dir, /metrics on a port): Route throughput at
concurrency 64 (client load spread over `--client-procs` processes), the on/off
ratio per round and overall, and for the "on" servers: records written vs
Route RPCs served, and `routecore_audit_dropped_total` from /metrics.
Also the server's CPU time per Route (from /proc: steadier than throughput
when other work shares the machine) and the request-path cost of one record
(Trace + contextvar + Recorder.put, best of 200 in-process runs).
Numbers, not assertions: the machine is shared and noisy, so read the ratios
within one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from route import _wait_ready, free_port

ROUTE_PY = str(Path(__file__).resolve().parent / "route.py")


def write_config(path: Path, on: bool, tmp: Path, metrics_port: int,
                 parts: str = "audit,metrics") -> None:
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["audit"] = {"path": str(tmp / "audit.db")} if on and "audit" in parts \
        else {"enabled": False}
    if on and "metrics" in parts:
        raw["metrics"] = {"port": metrics_port}
    path.write_text(yaml.safe_dump(raw))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def metric(text: str, pattern: str) -> float:
    m = re.search(r"^" + pattern + r" ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else float("nan")


def one_round(on: bool, seconds: float, client_procs: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rc-bench-audit-") as d:
        tmp = Path(d)
        port, mport = free_port(), free_port()
        cfg = tmp / "config.yaml"
        write_config(cfg, on, tmp, mport)
        server = subprocess.Popen(
            [sys.executable, "-m", "routecore.cli", "serve", "--config", str(cfg), "--port",
             str(port), "--log-level", "warning"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            _wait_ready(port)
            time.sleep(0.3)
            cpu0 = cpu_seconds(server.pid)
            procs = [subprocess.Popen([sys.executable, ROUTE_PY, "--_client", str(port),
                                       str(concurrency // client_procs), str(seconds), "route"],
                                      stdout=subprocess.PIPE, text=True)
                     for _ in range(client_procs)]
            results = [json.loads(p.communicate()[0]) for p in procs]
            cpu = cpu_seconds(server.pid) - cpu0
            served = sum(r["n"] + r["errors"] for r in results) + 50 * client_procs  # + warm-up
            out: dict[str, Any] = {
                "cpu_us_per_req": round(cpu / served * 1e6, 1),
                "per_s": round(sum(r["n"] for r in results)
                               / max(r["elapsed_s"] for r in results), 1),
                "errors": sum(r["errors"] for r in results),
                "p50_us": round(statistics.median(x for r in results for x in r["lat_us"]), 1),
            }
            if on:
                time.sleep(0.5)  # one writer wake-up: what was served is counted
                text = scrape(mport)
                out["route_rpcs"] = metric(text, r'routecore_requests_total\{rpc="Route",status="OK"\}')
                out["dropped"] = metric(text, r'routecore_audit_dropped_total\{reason="queue_full"\}')
                out["write_failed"] = metric(
                    text, r'routecore_audit_dropped_total\{reason="write_failed"\}')
        finally:
            server.terminate()  # SIGTERM: drain and flush the audit trail
            server.wait(30)
        if on:
            with sqlite3.connect(tmp / "audit.db") as db:
                out["records"] = db.execute("SELECT COUNT(*) FROM routecore_audit").fetchone()[0]
        return out


def put_cost_ns(n: int = 200_000) -> float:
    """Request-path cost of one record: a Trace, the contextvar, Recorder.put."""
    from routecore.config import load_config
    from routecore.domain import RouteRequest
    from routecore.observe.recorder import Recorder
    from routecore.observe.settings import parse_audit
    from routecore.server.records import Trace, trace_var

    settings = parse_audit(load_config(None))
    rec = Recorder(lambda ev, off: None, dataclasses.replace(settings, enabled=False))
    req = RouteRequest(prompt="hi")
    put = rec.put
    best = float("inf")
    for _ in range(n // 1000):  # 1,000 per writer wake-up, drained like the writer does
        t0 = time.perf_counter()
        for _ in range(1000):
            t = Trace(req)
            trace_var.set(t)
            put("Route", "rid", t0, "OK", None, trace_var.get())
        best = min(best, time.perf_counter() - t0)
        rec._queue.clear()
    return best / 1000 * 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    ns = ap.parse_args()
    rounds: list[dict[str, Any]] = []
    for i in range(ns.rounds):
        # Alternate which goes first so drift in machine load does not favour one side.
        order = (False, True) if i % 2 == 0 else (True, False)
        r = {("on" if on else "off"): one_round(on, ns.seconds, ns.client_procs, ns.concurrency)
             for on in order}
        r["ratio"] = round(r["on"]["per_s"] / r["off"]["per_s"], 3)
        r["cpu_ratio"] = round(r["on"]["cpu_us_per_req"] / r["off"]["cpu_us_per_req"], 3)
        rounds.append(r)
        if not ns.json:
            print(f"round {i + 1}: off {r['off']['per_s']:8.1f}/s  on {r['on']['per_s']:8.1f}/s  "
                  f"ratio {r['ratio']:.3f}  server CPU/req off {r['off']['cpu_us_per_req']:.0f} us "
                  f"on {r['on']['cpu_us_per_req']:.0f} us  records {r['on']['records']} / Route RPCs "
                  f"{r['on']['route_rpcs']:.0f}  dropped {r['on']['dropped']:.0f}", flush=True)
    off = sum(r["off"]["per_s"] for r in rounds)
    on = sum(r["on"]["per_s"] for r in rounds)
    out = {"concurrency": ns.concurrency, "seconds": ns.seconds, "rounds": rounds,
           "ratio_overall": round(on / off, 3),
           "ratio_min": min(r["ratio"] for r in rounds),
           "ratio_max": max(r["ratio"] for r in rounds),
           "cpu_per_req_ratio": round(sum(r["on"]["cpu_us_per_req"] for r in rounds)
                                      / sum(r["off"]["cpu_us_per_req"] for r in rounds), 3),
           "dropped_total": sum(r["on"]["dropped"] for r in rounds),
           "put_ns": round(put_cost_ns(), 1)}
    if ns.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"overall on/off throughput: {out['ratio_overall']:.3f} (rounds "
              f"{out['ratio_min']:.3f}..{out['ratio_max']:.3f}); server CPU per Route on/off "
              f"{out['cpu_per_req_ratio']:.3f}; dropped {out['dropped_total']:.0f}; "
              f"request-path record cost {out['put_ns']:.0f} ns")


if __name__ == "__main__":
    main()
