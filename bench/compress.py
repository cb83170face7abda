"""Prompt compression on the shared data's longest prompts: `python bench/compress.py [--json]`.

Reads the N longest prompts (by characters) of llmrouter.train.jsonl and
routerbench.train.jsonl from $ROUTECORE_DATA_DIR or ../shared/data/routing (by
path, never copied): MMLU reading passages, ARC-Challenge few-shot prompts,
logic-grid puzzles. Each is sent as one user prompt, at each target_ratio.

Reports, per setting, in one run:
- tokens saved per request (p50, mean) and the input tokens kept;
- compression time per prompt (p50, p99; wall clock, the quietest of 3 rounds),
  compiled core vs the pure twin (the twin runs in a child process with
  ROUTECORE_NO_EXTENSIONS=1 on the first --pure-n prompts);
- how often the routed model changes with compression on vs off (the built-in
  config, its default strategy and strategy cost), and the mean estimated cost;
- what can be checked offline about answer quality: whether the final question
  and its answer options survive verbatim, and how much of the question's
  lexical evidence (the context sentences sharing the most words with the
  question and options, ties in random order) is kept, against random and lead
  (first chunks) selections of the same size, per source. It means something for
  passages (MMLU reading, logic grids); an ARC-Challenge prompt's context is
  worked examples of other questions, with no evidence for the final one. The
  data carries per-model scores but no gold answer strings for these prompts,
  so answer accuracy itself is NOT measured.
Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from routecore import _fast  # noqa: E402
from routecore.domain import CompressSpec, RouteRequest  # noqa: E402
from routecore.learned.data import default_data_dir  # noqa: E402
from routecore.routing.compress import (  # noqa: E402
    CompressConfig,
    Compressor,
    query_text,
    question_start,
)
from routecore.routing.router import Router  # noqa: E402

FILES = ("llmrouter.train.jsonl", "routerbench.train.jsonl")
RATIOS = (0.7, 0.5, 0.3)
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("the a an of to and or in on at is are was were be by for with as that this "
                  "it its from which who what when where how why not no do does did".split())


def load(n: int) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    base = default_data_dir(ROOT)
    for name in FILES:
        path = base / name
        if not path.is_file():
            continue
        with path.open() as fh:
            rows.extend({"prompt": r["prompt"], "source": r["source"]}
                        for r in map(json.loads, fh))
    rows.sort(key=lambda r: -len(r["prompt"]))
    return rows[:n]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else 0.0


def timed(comp: Compressor, reqs: list[RouteRequest]) -> list[float]:
    """Per-prompt compression time in us, the quietest (lowest p50) of 3 rounds."""
    best: list[float] = []
    for _ in range(3):
        ts = []
        for r in reqs:
            t0 = time.perf_counter_ns()
            comp.compress(r, "")
            ts.append((time.perf_counter_ns() - t0) / 1000)
        if not best or pct(ts, 0.5) < pct(best, 0.5):
            best = ts
    return best


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def evidence(prompt: str, kept: str, rng: random.Random) -> dict[str, float] | None:
    """Share of the question's top-3 lexical-evidence sentences kept: by the compressor,
    by a random pick and by a lead pick of the same number of sentences."""
    q = question_start(prompt)
    ctx, question = prompt[:q], prompt[q:]
    spans = _fast.split_chunks(ctx, 600).tolist()
    sents = [ctx[a:b] for a, b, kind in spans if kind == 0 and ctx[a:b].strip()]
    if len(sents) < 6:
        return None
    qw = words(query_text(question, [ctx]))
    order = list(range(len(sents)))
    rng.shuffle(order)  # ties in random order: a stable sort would favour the lead
    overlap = sorted(order, key=lambda i: -len(words(sents[i]) & qw))
    top = overlap[:3]
    kept_idx = [i for i, s in enumerate(sents) if s.strip() in kept]
    k = len(kept_idx)
    rand = set(rng.sample(range(len(sents)), k))
    lead = set(range(k))
    return {"compressor": sum(i in kept_idx for i in top) / 3,
            "random": sum(i in rand for i in top) / 3,
            "lead": sum(i in lead for i in top) / 3,
            "kept_share": k / len(sents)}


def options_intact(prompt: str, kept: str) -> bool:
    """The final question block (from the question start on) is a suffix of what is sent."""
    q = question_start(prompt)
    return kept.endswith(prompt[q:].rstrip()[-2000:]) or kept.rstrip().endswith(
        prompt[q:].rstrip()[-2000:])


def pure_timings(n: int, ratio: float) -> list[float]:
    """The pure twin's per-prompt times, from a child process with the extension off."""
    env = {**os.environ, "ROUTECORE_NO_EXTENSIONS": "1"}
    out = subprocess.run([sys.executable, __file__, "--child-pure", str(n), "--ratio", str(ratio)],
                         env=env, capture_output=True, text=True, check=True)
    return [float(x) for x in json.loads(out.stdout)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("-n", type=int, default=300, help="longest prompts to use")
    ap.add_argument("--pure-n", type=int, default=60, help="prompts timed on the pure twin")
    ap.add_argument("--child-pure", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--ratio", type=float, default=0.5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_pure:
        comp = Compressor(CompressConfig())
        reqs = [RouteRequest(prompt=r["prompt"], compress=CompressSpec(target_ratio=args.ratio))
                for r in load(args.child_pure)]
        print(json.dumps(timed(comp, reqs)))
        return
    rows = load(args.n)
    if not rows:
        print(f"no data under {default_data_dir(ROOT)}; set ROUTECORE_DATA_DIR")
        return
    router = Router.from_config(None)
    comp = router.compressor
    sources: dict[str, int] = {}
    for r in rows:
        sources[r["source"]] = sources.get(r["source"], 0) + 1
    report: dict[str, Any] = {
        "prompts": len(rows), "sources": sources, "compiled": _fast.HAVE_EXTENSIONS,
        "chars_p50": pct([len(r["prompt"]) for r in rows], 0.5),
        "chars_min": min(len(r["prompt"]) for r in rows), "settings": {}}
    off = {s: [router.route(RouteRequest(prompt=r["prompt"], strategy=s)) for r in rows]
           for s in ("", "cost")}
    for ratio in RATIOS:
        spec = CompressSpec(target_ratio=ratio)
        reqs = [RouteRequest(prompt=r["prompt"], compress=spec) for r in rows]
        on = {s: [router.route(RouteRequest(prompt=r["prompt"], strategy=s, compress=spec))
                  for r in rows] for s in ("", "cost")}
        saved = [d.compression.tokens_saved if d.compression else 0 for d in on[""]]
        before = [d.input_tokens for d in off[""]]
        rng = random.Random(7)
        ev: dict[str, list[dict[str, float]]] = {}
        for d, r in zip(on[""], rows, strict=True):
            e = evidence(r["prompt"], d.compression.prompt if d.compression else r["prompt"],
                         rng)
            if e is not None:
                ev.setdefault("all", []).append(e)
                ev.setdefault(r["source"], []).append(e)
        intact = [options_intact(r["prompt"], d.compression.prompt if d.compression
                                 else r["prompt"]) for d, r in zip(on[""], rows, strict=True)]
        c_times = timed(comp, reqs)
        p_times = pure_timings(min(args.pure_n, len(rows)), ratio) if _fast.HAVE_EXTENSIONS \
            else []
        n_pure = len(p_times)
        row: dict[str, Any] = {
            "input_tokens_before_p50": pct(before, 0.5),
            "tokens_saved_p50": pct(saved, 0.5),
            "tokens_saved_mean": round(sum(saved) / len(saved), 1),
            "saved_share_mean": round(sum(s / b for s, b in zip(saved, before, strict=True))
                                      / len(saved), 3),
            "compressed": sum(1 for d in on[""] if d.compression) / len(rows),
            "time_us_compiled": {"p50": round(pct(c_times, 0.5), 1),
                                 "p99": round(pct(c_times, 0.99), 1)},
            "time_us_compiled_same_prompts_as_pure": {
                "p50": round(pct(c_times[:n_pure], 0.5), 1)} if n_pure else None,
            "time_us_pure": {"p50": round(pct(p_times, 0.5), 1),
                             "p99": round(pct(p_times, 0.99), 1), "prompts": n_pure}
            if n_pure else None,
            "model_changed": {s or "default": sum(a.model != b.model for a, b in
                                                  zip(off[s], on[s], strict=True)) / len(rows)
                              for s in off},
            "est_cost_usd_mean": {s or "default": {
                "off": sum(d.estimated_cost_usd for d in off[s]) / len(rows),
                "on": sum(d.estimated_cost_usd for d in on[s]) / len(rows)} for s in off},
            "question_block_intact": sum(intact) / len(intact),
            "evidence_top3_kept": {src: {"n": len(es), **{
                k: round(sum(e[k] for e in es) / len(es), 3)
                for k in ("compressor", "random", "lead", "kept_share")}}
                for src, es in ev.items() if len(es) >= 10},
        }
        report["settings"][str(ratio)] = row
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['prompts']} longest prompts (chars p50 {report['chars_p50']}, min "
          f"{report['chars_min']}): {report['sources']}")
    for ratio, row in report["settings"].items():
        print(f"\ntarget_ratio {ratio}")
        for k, v in row.items():
            print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
