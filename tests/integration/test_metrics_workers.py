"""`routecore serve --workers 2 --metrics-port N`: one scrape sees every worker's requests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
from services import free_port

from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def _routed(text: str) -> float:
    m = re.search(r'^routecore_requests_total\{rpc="Route",status="OK"\} ([0-9.e+]+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def _routed_by_pid(mpdir: Path) -> dict[str, float]:
    """Route calls counted so far in each worker's multiprocess file."""
    from prometheus_client.mmap_dict import MmapedDict

    out: dict[str, float] = {}
    for path in mpdir.glob("counter_*.db"):
        if path.stat().st_size < 4:  # a worker creating its file right now: read it next time
            continue
        n = sum(v for key, v, *_ in MmapedDict.read_all_values_from_file(str(path))
                if key.startswith('["routecore_requests"') and '"Route"' in key)
        if n:
            out[path.stem] = n
    return out


def test_one_scrape_counts_every_worker(tmp_path: Path) -> None:
    """With two workers behind one port, /metrics counts the Route calls served by both."""
    port, mport = free_port(), free_port()
    mpdir = tmp_path / "prom"
    mpdir.mkdir()
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(mpdir)}
    proc = subprocess.Popen([sys.executable, "-m", "routecore.cli", "serve", "--port", str(port),
                             "--workers", "2", "--metrics-port", str(mport), "--log-level",
                             "warning"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        n, deadline = 0, time.monotonic() + 40
        # Until both workers have counted Route calls in their own files; a fresh
        # connection each time: the kernel spreads connections over the workers.
        while time.monotonic() < deadline and (n < 10 or len(_routed_by_pid(mpdir)) < 2):
            try:
                with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                    router_pb2_grpc.RouterStub(ch).Route(pb.RouteRequest(prompt="2+2?"),
                                                         timeout=5)
                n += 1
            except grpc.RpcError:
                time.sleep(0.1)  # noqa: TID251 (a synchronous test waiting for the server)
        by_pid = _routed_by_pid(mpdir)
        assert len(by_pid) == 2, f"{n} calls, counted by {by_pid}"
        seen = 0.0
        while time.monotonic() < deadline and seen < n:
            time.sleep(0.2)  # noqa: TID251 (writers wake every 0.1 s)
            seen = _routed(_scrape(mport))
        assert seen == n
    finally:
        proc.terminate()
        proc.wait(30)
