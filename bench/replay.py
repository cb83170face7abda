"""Offline replay speed: `python bench/replay.py [--n 100000] [--json]`.

Writes an audit trail of `--n` Route and Complete records (prompts from the
shared routing data when present, else synthetic; eight tenants; a few
per-request constraints) into SQLite twice, with prompts stored and without,
through the server's own record builder, then times `routecore replay` logic
(`Replayer.run`: read, route every request through the candidate router,
report) on each against a candidate config (`routing.default_strategy: cost`).
Target: 100,000 logged requests in under 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "routing" / "routerbench.train.jsonl"


def prompts(limit: int = 2000) -> list[str]:
    if DATA.is_file():
        with DATA.open() as fh:
            out = [json.loads(line)["prompt"][:4000] for _, line in zip(range(limit), fh, strict=False)]
        return [p for p in out if p.strip()]
    from route import make_prompt

    return [make_prompt(size, seed) for seed, size in enumerate([80, 400, 1500] * 200)]


async def write_trail(path: Path, n: int, store_prompts: bool, texts: list[str]) -> float:
    from routecore.calling.types import CompletionRequest, CompletionResult, Usage
    from routecore.config import load_config
    from routecore.domain import Constraints, RouteRequest
    from routecore.observe.record import to_row
    from routecore.observe.store import SqliteStore
    from routecore.routing.router import Router
    from routecore.server.records import Trace, build_record

    router = Router.from_config(load_config(None))
    rng = random.Random(7)
    store = SqliteStore(path)
    t0 = time.perf_counter()
    batch: list[tuple[Any, ...]] = []
    for i in range(n):
        c = Constraints(max_cost_usd=0.01) if i % 10 == 0 else Constraints()
        req = RouteRequest(prompt=texts[i % len(texts)], tenant=f"tenant-{i % 8}",
                           user=f"u{rng.randrange(100)}", constraints=c, request_id=f"r{i}")
        d = router.route(req)
        trace = Trace(req)
        rpc = "Route" if i % 2 else "Complete"
        if rpc == "Route":
            trace.decision = d
        else:
            trace.request = CompletionRequest(route=req)
            usage = Usage(d.input_tokens, rng.randrange(20, 400))
            spec = router.config.models[d.model]
            trace.result = CompletionResult(
                text="", model=d.model, provider=d.provider, usage=usage,
                cost_usd=(usage.input_tokens * spec.price.input
                          + usage.output_tokens * spec.price.output) / 1e6,
                latency_ms=10.0, attempts=(), decision=d, request_id=req.request_id)
        now = time.perf_counter()
        rec = build_record((rpc, req.request_id, now, now, "OK", None, trace), 0.0, store_prompts)
        assert rec is not None
        rec.ts = 1_700_000_000.0 + i
        batch.append(to_row(rec))
        if len(batch) == 5000:
            await store.write(batch)
            batch = []
    if batch:
        await store.write(batch)
    await store.close()
    return time.perf_counter() - t0


async def replay(path: Path, candidate: Path) -> dict[str, Any]:
    from routecore.config import load_config
    from routecore.learned.replay import Replayer

    t0 = time.perf_counter()
    replayer = Replayer(load_config(candidate))
    result = await replayer.run(str(path))
    report = result.report(time.perf_counter() - t0)
    return {k: report[k] for k in ("replayed", "with_prompt", "from_features", "skipped",
                                   "seconds", "changed", "changed_share", "cost_change")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    ns = ap.parse_args()
    texts = prompts()
    out: dict[str, Any] = {"n": ns.n, "prompts": len(texts), "data": DATA.is_file()}
    with tempfile.TemporaryDirectory(prefix="rc-bench-replay-") as d:
        tmp = Path(d)
        raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
        raw["routing"] = {**raw.get("routing", {}), "default_strategy": "cost"}
        candidate = tmp / "candidate.yaml"
        candidate.write_text(yaml.safe_dump(raw))
        for label, store_prompts in (("with_prompts", True), ("features_only", False)):
            db = tmp / f"{label}.db"
            written = asyncio.run(write_trail(db, ns.n, store_prompts, texts))
            res = asyncio.run(replay(db, candidate))
            res["write_s"] = round(written, 1)
            res["db_mb"] = round(db.stat().st_size / 1e6, 1)
            out[label] = res
            if not ns.json:
                print(f"{label:14} {res['replayed']} requests replayed in {res['seconds']} s "
                      f"({res['replayed'] / res['seconds']:.0f}/s); changed "
                      f"{res['changed_share']:.1%}, cost {res['cost_change']:+.1%}; "
                      f"trail written in {res['write_s']} s, {res['db_mb']} MB", flush=True)
    if ns.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
