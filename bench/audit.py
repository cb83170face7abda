"""Cost of the audit trail and metrics on Route: `python bench/audit.py [--json]`.

Two `routecore serve` processes for the whole run, one with audit + metrics
off (`audit: {enabled: false}`, no metrics port) and one on (SQLite audit in a
temp dir, /metrics on a port); the same Route load at concurrency 64 (client
load spread over `--client-procs` processes) alternates between them in short
windows. Per window pair: the on/off throughput ratio; overall: the median and
the spread. For the "on" server at the end: records written (after SIGTERM) vs
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
    if not on:  # regression alerts would keep the recorder's writer running for the detector
        raw["alerts"] = {"enabled": False}
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


class Server:
    """One `routecore serve` for the whole run (audit + metrics on or off)."""

    def __init__(self, on: bool, tmp: Path) -> None:
        self.on, self.tmp = on, tmp
        self.port, self.mport = free_port(), free_port()
        cfg = tmp / f"config-{'on' if on else 'off'}.yaml"
        write_config(cfg, on, tmp, self.mport)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "routecore.cli", "serve", "--config", str(cfg), "--port",
             str(self.port), "--log-level", "warning"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def load(self, seconds: float, client_procs: int, concurrency: int) -> dict[str, Any]:
        cpu0 = cpu_seconds(self.proc.pid)
        procs = [subprocess.Popen([sys.executable, ROUTE_PY, "--_client", str(self.port),
                                   str(concurrency // client_procs), str(seconds), "route"],
                                  stdout=subprocess.PIPE, text=True)
                 for _ in range(client_procs)]
        results = [json.loads(p.communicate()[0]) for p in procs]
        cpu = cpu_seconds(self.proc.pid) - cpu0
        served = sum(r["n"] + r["errors"] for r in results) + 50 * client_procs  # + warm-up
        return {"per_s": round(sum(r["n"] for r in results)
                               / max(r["elapsed_s"] for r in results), 1),
                "cpu_us_per_req": round(cpu / served * 1e6, 1),
                "errors": sum(r["errors"] for r in results),
                "p50_us": round(statistics.median(x for r in results for x in r["lat_us"]), 1)}

    def audit_counts(self) -> dict[str, float]:
        """Route RPCs counted, records dropped (from /metrics) and rows in the trail, after
        a SIGTERM (drain, flush)."""
        time.sleep(0.5)  # one writer wake-up
        text = scrape(self.mport)
        out = {"route_rpcs": metric(text, r'routecore_requests_total\{rpc="Route",status="OK"\}'),
               "dropped": metric(text, r'routecore_audit_dropped_total\{reason="queue_full"\}'),
               "write_failed": metric(
                   text, r'routecore_audit_dropped_total\{reason="write_failed"\}')}
        self.stop()
        with sqlite3.connect(self.tmp / "audit.db") as db:
            out["records"] = db.execute("SELECT COUNT(*) FROM routecore_audit").fetchone()[0]
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: drain and flush the audit trail
            self.proc.wait(30)


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
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    ns = ap.parse_args()
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rc-bench-audit-") as d:
        servers = {on: Server(on, Path(d)) for on in (False, True)}
        try:
            for srv in servers.values():
                _wait_ready(srv.port)
            time.sleep(0.5)
            for i in range(ns.rounds):
                # Both servers stay up; the load alternates between them in short windows,
                # and which goes first alternates, so drifting machine load hits both alike.
                order = (False, True) if i % 2 == 0 else (True, False)
                r: dict[str, Any] = {
                    ("on" if on else "off"): servers[on].load(ns.seconds, ns.client_procs,
                                                              ns.concurrency) for on in order}
                r["ratio"] = round(r["on"]["per_s"] / r["off"]["per_s"], 3)
                r["cpu_ratio"] = round(r["on"]["cpu_us_per_req"] / r["off"]["cpu_us_per_req"], 3)
                rounds.append(r)
                if not ns.json:
                    print(f"round {i + 1}: off {r['off']['per_s']:8.1f}/s  on "
                          f"{r['on']['per_s']:8.1f}/s  ratio {r['ratio']:.3f}  server CPU/req "
                          f"off {r['off']['cpu_us_per_req']:.0f} us on "
                          f"{r['on']['cpu_us_per_req']:.0f} us", flush=True)
            counts = servers[True].audit_counts()
        finally:
            for srv in servers.values():
                srv.stop()
    ratios = sorted(r["ratio"] for r in rounds)
    cpu_ratios = sorted(r["cpu_ratio"] for r in rounds)
    out = {"concurrency": ns.concurrency, "seconds": ns.seconds, "rounds": rounds,
           "ratio_median": statistics.median(ratios),
           "ratio_overall": round(sum(r["on"]["per_s"] for r in rounds)
                                  / sum(r["off"]["per_s"] for r in rounds), 3),
           "ratio_min": ratios[0], "ratio_max": ratios[-1],
           "cpu_per_req_ratio_median": statistics.median(cpu_ratios),
           **counts, "put_ns": round(put_cost_ns(), 1)}
    if ns.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"on/off Route throughput: median {out['ratio_median']:.3f}, overall "
              f"{out['ratio_overall']:.3f} (rounds {out['ratio_min']:.3f}..{out['ratio_max']:.3f});"
              f" server CPU per Route on/off median {out['cpu_per_req_ratio_median']:.3f}")
        print(f"audit: {out['records']} records for {out['route_rpcs']:.0f} Route RPCs, dropped "
              f"{out['dropped']:.0f}, write failures {out['write_failed']:.0f}; request-path "
              f"record cost {out['put_ns']:.0f} ns")


if __name__ == "__main__":
    main()
