"""Benchmark the response cache: hit rates, false hits, money saved, the cost of a miss.

    python bench/cache.py [--json] [--bases 300] [--seed 7] [--threshold 0.9]
                          [--redis] [--redis-url redis://...]
                          [--data $ROUTECORE_DATA_DIR/llmrouter.train.jsonl]

Workload (built here from the shared data, which is read by path, never copied):
`--bases` prompts of at most 600 characters drawn from llmrouter.train.jsonl
(natural_qa, trivia_qa, gsm8k, commonsense_qa, arc_challenge, openbook_qa, mbpp),
each asked once, plus for each base:

- a repeat (the same text) for one base in two, and a reformatted repeat
  (runs of spaces, a trailing space) for one in four: exact hits expected;
- one paraphrase, from these templates (the base `p`, `p_` with its first
  letter lowercased): "Please answer: p", "Question: p", "p Thanks!",
  "Could you tell me p_", "Hey, quick question: p", "PLAIN" = p all lowercase,
  "p" with its final "?" dropped or added: semantic hits expected (a static
  embedding cannot see meaning-preserving rewordings beyond these; the guard
  refuses new content words, see calling/cache_guard.py);
- near misses whose right answer differs (false-hit controls): the first
  number changed (n -> n + 7), "not" inserted after the first is/are/was/can/
  does/should..., or the first capitalised name inside a sentence swapped for
  another. Any hit on one of these is a false hit.

The whole list is shuffled (seed) and replayed through the in-process Completer
(the real router, the simulated provider in process, 0 ms upstream latency) on
one tenant, twice: cache off and cache on (`cache: {exact: {}, semantic:
{threshold}}`, memory backend). Reported: hit rate (exact, semantic) per kind
of request, false hits (a hit on a control, or a hit serving another base's
answer), spend with the cache off and on and the difference, and the added
latency of a miss: Complete p50/p99 of the requests that missed against the
same requests with the cache off, same run (the upstream is instant here, so
the ratio is the cache's own cost: embedding, guard, FAISS search, store).
Handwritten pairs (SAME, DIFFERENT below, written after the guard and not
tuned on): natural rewordings and near misses, scored by threshold and guard
alone, since the templated paraphrases above only add words the guard ignores.
Bursts: 20 of the base prompts, each sent as 16 identical Completes at once,
cache off and on: identical requests in flight share one model call
(calling/cache_flights.py), so the upstream calls drop from 320 toward 20.
"Hittable" asks are those whose base was asked before (a control never is): the
first ask of a base can only miss.
With `--redis` the replay runs a third time with the cache on a Redis state
backend (a throwaway `redis-server` from PATH, or `--redis-url`; breakers and
rate limits stay in memory in every run, so the difference is the cache's):
the same hits, and what a miss costs when the lookup is a Redis round trip.
No timed assertions; compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from complete import pct  # bench/complete.py's (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("natural_qa", "trivia_qa", "gsm8k", "commonsense_qa", "arc_challenge", "openbook_qa",
           "mbpp")
TEMPLATES = ("Please answer: {p}", "Question: {p}", "{p} Thanks!", "Could you tell me {p_}",
             "Hey, quick question: {p}", "PLAIN", "QMARK")
NAMES = ("Norway", "Lisbon", "Kenya", "Einstein", "Toyota", "Mozart")
_NUM = re.compile(r"(?<![\w.])\d+(?![\d.,]\d)")
_AUX = re.compile(r"\b(is|are|was|were|can|does|do|did|should|would|will)\b")
_NAME = re.compile(r"(?<=[a-z,] )[A-Z][a-z]{2,}")


# Handwritten after the guard was built (not tuned on): natural rewordings that should
# hit, and near misses whose answers differ, scored by threshold + guard alone.
SAME = [
    ("How do I reverse a list in Python?", "What's the way to reverse a Python list?"),
    ("What is the capital of Australia?", "Which city is Australia's capital?"),
    ("Explain how vaccines work.", "Can you explain how vaccines work?"),
    ("Summarize the causes of World War I.", "Give me a summary of the causes of World War I."),
    ("What are the health benefits of green tea?", "What health benefits does green tea have?"),
    ("Translate 'good morning' into Spanish.", "How do you say 'good morning' in Spanish?"),
    ("How many bones are in the human body?", "How many bones does the human body have?"),
    ("Write a haiku about autumn leaves.", "Compose a haiku about autumn leaves."),
    ("What does HTTP stand for?", "What is HTTP short for?"),
    ("How do I make a cup of green tea?", "How should I make a cup of green tea?"),
    ("Who painted the Mona Lisa?", "Who was the painter of the Mona Lisa?"),
    ("What is the boiling point of water at sea level?",
     "At sea level, what is the boiling point of water?"),
    ("List some tips for better sleep.", "Give me some tips for sleeping better."),
    ("Why is the sky blue?", "why is the sky blue"),
    ("How can I improve my resume?", "What can I do to improve my resume?"),
    ("Define photosynthesis.", "What is the definition of photosynthesis?"),
    ("What is the difference between a virus and a bacterium?",
     "How does a virus differ from a bacterium?"),
    ("Recommend a good book about habits.", "Can you recommend a good book on habits?"),
    ("How long should I boil an egg?", "For how long should an egg be boiled?"),
    ("What causes inflation?", "What are the causes of inflation?"),
]
DIFFERENT = [
    ("Convert 30 miles to km", "Convert 50 miles to km"),
    ("What is the capital of Australia?", "What is the capital of Austria?"),
    ("Is coffee good for you?", "Is coffee not good for you?"),
    ("How do I sort a list in Python?", "How do I sort a list in Java?"),
    ("Who painted the Mona Lisa?", "Who stole the Mona Lisa?"),
    ("What is 15% of 80?", "What is 15% of 90?"),
    ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?"),
    ("Write a poem about the sea.", "Write a poem about the desert."),
    ("What are the side effects of ibuprofen?", "What are the side effects of aspirin?"),
    ("Should I buy Tesla stock?", "Should I sell Tesla stock?"),
    ("Translate 'good morning' into Spanish.", "Translate 'good morning' into French."),
    ("How many calories are in an apple?", "How many calories are in a banana?"),
    ("What is the largest planet?", "What is the smallest planet?"),
    ("Explain recursion with an example in C.", "Explain recursion with an example in Rust."),
    ("Who won the World Cup in 2014?", "Who won the World Cup in 2018?"),
    ("Is option B correct?", "Is option D correct?"),
    ("Can I take ibuprofen with alcohol?", "Can I take ibuprofen without alcohol?"),
    ("What time zone is New York in?", "What time zone is Los Angeles in?"),
    ("How do I delete a Git branch locally?", "How do I delete a Git branch remotely?"),
    ("What is the population of Canada?", "What is the population of Mexico?"),
]


def pairs(threshold: float) -> dict[str, Any]:
    """The handwritten pairs: how many would hit (similarity >= threshold and the guard)."""
    from routecore.calling.cache_guard import extract, passes
    from routecore.routing.embedding import StaticEmbedder

    embed = StaticEmbedder.shipped().embed

    def hit(a: str, b: str) -> tuple[bool, bool]:
        close = float(embed(a) @ embed(b)) >= threshold
        return close, close and passes(extract(a), extract(b), embed)

    same = [hit(a, b) for a, b in SAME]
    diff = [hit(a, b) for a, b in DIFFERENT]
    return {"paraphrases": len(SAME), "paraphrases_close": sum(c for c, _ in same),
            "paraphrases_hit": sum(h for _, h in same),
            "near_misses": len(DIFFERENT), "near_misses_close": sum(c for c, _ in diff),
            "near_misses_hit": sum(h for _, h in diff),
            "near_miss_false_hits": [DIFFERENT[i] for i, (_, h) in enumerate(diff) if h]}


@dataclass(frozen=True, slots=True)
class Ask:
    base: int
    kind: str  # base, repeat, reformat, paraphrase, control
    prompt: str


def _paraphrase(p: str, rng: random.Random) -> str:
    t = rng.choice(TEMPLATES)
    if t == "PLAIN":
        return p.lower()
    if t == "QMARK":
        return p[:-1] if p.endswith("?") else p + "?"
    return t.format(p=p, p_=p[:1].lower() + p[1:])


def _controls(p: str) -> list[str]:
    out = []
    m = _NUM.search(p)
    if m:
        out.append(p[:m.start()] + str(int(m.group()) + 7) + p[m.end():])
    m = _AUX.search(p)
    if m:
        out.append(p[:m.end()] + " not" + p[m.end():])
    m = _NAME.search(p)
    if m:
        swap = next(n for n in NAMES if n != m.group())
        out.append(p[:m.start()] + swap + p[m.end():])
    return out


def workload(path: Path, n: int, seed: int) -> list[Ask]:
    rng = random.Random(seed)
    rows = [json.loads(line) for line in path.open()]
    rows = [r for r in rows if r["source"] in SOURCES and 10 < len(r["prompt"]) <= 600]
    rng.shuffle(rows)
    asks: list[Ask] = []
    for i, r in enumerate(rows[:n]):
        p = r["prompt"].strip()
        asks.append(Ask(i, "base", p))
        if i % 2 == 0:
            asks.append(Ask(i, "repeat", p))
        if i % 4 == 1:
            asks.append(Ask(i, "reformat", p.replace(" ", "  ", 3) + " "))
        asks.append(Ask(i, "paraphrase", _paraphrase(p, rng)))
        asks += [Ask(i, "control", c) for c in _controls(p)]
    rng.shuffle(asks)
    return asks


async def replay(asks: list[Ask], cache: dict[str, Any] | None, redis_url: str = "",
                 pings: list[float] | None = None, copies: int = 1) -> list[tuple[Any, float]]:
    """Each ask in turn (`copies` identical ones at once): (result, ms) per request."""
    from routecore.calling.completion import Completer, parse_settings
    from routecore.calling.resilience import Resilience
    from routecore.calling.types import CompletionRequest
    from routecore.config import load_config
    from routecore.domain import RouteRequest
    from routecore.routing.router import Router
    from routecore.state import open_backend, parse_state

    cfg = load_config(None)
    if cache is not None:
        cfg = replace(cfg, extra={**cfg.extra, "cache": cache})
    router = Router.from_config(cfg)
    state = open_backend(parse_state({"backend": "redis", "redis_url": redis_url}
                                     if redis_url else None))
    await state.start()
    # Breakers and rate limits in memory either way: Redis serves the cache alone here.
    completer = Completer(cfg, router, state=state,
                          resilience=Resilience(parse_settings(cfg).resilience))
    out = []
    try:
        for a in asks:
            req = CompletionRequest(RouteRequest(prompt=a.prompt, tenant="bench"),
                                    max_output_tokens=256)
            if pings is not None and redis_url:  # one bare round trip, for scale
                t0 = time.perf_counter()
                await state.client.ping()  # type: ignore[union-attr]
                pings.append((time.perf_counter() - t0) * 1000.0)
            t0 = time.perf_counter()
            for res in await asyncio.gather(*(completer.complete(req) for _ in range(copies))):
                out.append((res, (time.perf_counter() - t0) * 1000.0))
    finally:
        await completer.aclose()
        await state.aclose()
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    asks = workload(Path(args.data), args.bases, args.seed)
    cache = {"exact": {"ttl_s": 3600}, "semantic": {"threshold": args.threshold, "ttl_s": 3600}}
    await replay(asks[:50], None)  # warm-up: load the embedding, classifier, caches
    off = await replay(asks, None)
    on = await replay(asks, cache)
    pings: list[float] = []
    on_redis = await replay(asks, cache, args.redis_url, pings) if args.redis_url else None
    firsts = [a for a in asks if a.kind == "base"][:20]  # bursts: 16 identical at once each
    burst_off = await replay(firsts, None, copies=16)
    burst_on = await replay(firsts, cache, copies=16)
    texts: dict[int, set[str]] = {}  # the fresh answers each base's asks got so far
    seen: set[int] = set()  # bases asked before (not counting controls)
    stored: dict[int, set[str]] = {}  # per base: models whose earlier answer was storable
    why_missed = {"earlier answer cut (length), not stored": 0,
                  "routed to another model than the stored answer": 0,
                  "below the threshold or refused by the guard": 0}
    kinds: dict[str, dict[str, int]] = {}
    false_hits: list[tuple[str, str]] = []
    miss_on, miss_off = [], []
    saved = 0.0
    for a, (r_on, ms_on), (_r_off, ms_off) in zip(asks, on, off, strict=True):
        k = kinds.setdefault(a.kind, {"n": 0, "hittable": 0, "exact": 0, "semantic": 0})
        k["n"] += 1
        hit = r_on.cache_hit in ("exact", "semantic")
        if a.kind != "control" and a.base in seen:
            k["hittable"] += 1  # an earlier ask of the same base could have been stored
            if not hit:
                models = stored.get(a.base, set())
                why = ("earlier answer cut (length), not stored" if not models else
                       "routed to another model than the stored answer"
                       if r_on.decision.model not in models else
                       "below the threshold or refused by the guard")
                why_missed[why] += 1
        if a.kind != "control":
            seen.add(a.base)
            if not hit and r_on.finish_reason != "length":
                stored.setdefault(a.base, set()).add(r_on.decision.model)
        if hit:
            k[r_on.cache_hit] += 1
            saved += r_on.saved_usd
            if a.kind == "control" or r_on.text not in texts.get(a.base, ()):
                false_hits.append((a.kind, a.prompt[:80]))
        else:
            miss_on.append(ms_on)
            miss_off.append(ms_off)
            if a.kind != "control":
                texts.setdefault(a.base, set()).add(r_on.text)
    redis_out: dict[str, Any] | None = None
    if on_redis is not None:
        r_miss = [ms for (r, ms) in on_redis if r.cache_hit not in ("exact", "semantic")]
        r_off = [ms for (r, _), (_, ms) in zip(on_redis, off, strict=True)
                 if r.cache_hit not in ("exact", "semantic")]
        redis_out = {
            "hits": sum(r.cache_hit in ("exact", "semantic") for r, _ in on_redis),
            "hits_memory": sum(r.cache_hit in ("exact", "semantic") for r, _ in on),
            "ping_ms_p50": round(statistics.median(pings), 3),
            "miss_ms": {"p50_off": round(statistics.median(r_off), 3),
                        "p50_on": round(statistics.median(r_miss), 3),
                        "p99_off": round(pct(r_off, 0.99), 3),
                        "p99_on": round(pct(r_miss, 0.99), 3)}}
    cost_off = sum(r.cost_usd for r, _ in off)
    cost_on = sum(r.cost_usd for r, _ in on)
    hits = sum(k["exact"] + k["semantic"] for k in kinds.values())
    return {
        "requests": len(asks), "bases": args.bases, "threshold": args.threshold,
        "by_kind": {name: {**k, "hit_rate": round((k["exact"] + k["semantic"]) / k["n"], 3),
                           "hit_rate_of_hittable": round((k["exact"] + k["semantic"])
                                                         / max(1, k["hittable"]), 3)}
                    for name, k in sorted(kinds.items())},
        "hittable": sum(k["hittable"] for k in kinds.values()),
        "hittable_missed_because": why_missed,
        "hit_rate": round(hits / len(asks), 3),
        "false_hits": len(false_hits), "false_hit_examples": false_hits[:5],
        "cost_usd_cache_off": round(cost_off, 6), "cost_usd_cache_on": round(cost_on, 6),
        "saved_usd": round(cost_off - cost_on, 6), "saved_usd_reported": round(saved, 6),
        "saved_share": round((cost_off - cost_on) / cost_off, 3) if cost_off else 0.0,
        "miss_ms": {"p50_off": round(statistics.median(miss_off), 3),
                    "p50_on": round(statistics.median(miss_on), 3),
                    "p99_off": round(pct(miss_off, 0.99), 3),
                    "p99_on": round(pct(miss_on, 0.99), 3),
                    "added_p50": round(statistics.median(miss_on) - statistics.median(miss_off),
                                       3),
                    "added_p99": round(pct(miss_on, 0.99) - pct(miss_off, 0.99), 3)},
        "redis": redis_out,
        "handwritten_pairs": pairs(args.threshold),
        "burst": {"prompts": len(firsts), "copies": 16,
                  "calls_cache_off": len(burst_off),
                  "calls_cache_on": sum(r.cache_hit not in ("exact", "semantic")
                                        for r, _ in burst_on),
                  "cost_usd_cache_off": round(sum(r.cost_usd for r, _ in burst_off), 6),
                  "cost_usd_cache_on": round(sum(r.cost_usd for r, _ in burst_on), 6)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    from routecore.learned.data import default_data_dir  # $ROUTECORE_DATA_DIR or ../shared

    ap.add_argument("--data", default=str(default_data_dir() / "llmrouter.train.jsonl"))
    ap.add_argument("--bases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--redis", action="store_true",
                    help="also replay on a throwaway redis-server (state.backend redis)")
    ap.add_argument("--redis-url", default="", help="replay on this Redis (implies --redis)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not Path(args.data).exists():
        sys.exit(f"no data at {args.data} (the shared routing data; see its README)")
    if args.redis and not args.redis_url:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from budget import redis  # the throwaway redis-server of bench/budget.py

        with redis(None) as url:
            args.redis_url = url
            out = asyncio.run(main_async(args))
    else:
        out = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['requests']} requests ({out['bases']} bases), threshold {out['threshold']}")
    for name, k in out["by_kind"].items():
        print(f"  {name:<11} n={k['n']:<4} hittable={k['hittable']:<4} exact={k['exact']:<4} "
              f"semantic={k['semantic']:<4} hit rate {k['hit_rate']:.1%} "
              f"({k['hit_rate_of_hittable']:.1%} of hittable)")
    hits = sum(k["exact"] + k["semantic"] for k in out["by_kind"].values())
    print(f"hit rate {out['hit_rate']:.1%} of all, {hits / max(1, out['hittable']):.1%} of the "
          f"{out['hittable']} hittable; false hits {out['false_hits']} "
          f"{out['false_hit_examples']}")
    print("hittable asks that missed: " + "; ".join(
        f"{why}: {n}" for why, n in out["hittable_missed_because"].items()))
    print(f"spend: cache off ${out['cost_usd_cache_off']:.4f}, on ${out['cost_usd_cache_on']:.4f}"
          f" -> saved ${out['saved_usd']:.4f} ({out['saved_share']:.1%}); hits report "
          f"${out['saved_usd_reported']:.4f} saved")
    m = out["miss_ms"]
    print(f"a miss: p50 {m['p50_on']:.3f} ms vs {m['p50_off']:.3f} ms off (+{m['added_p50']:.3f});"
          f" p99 {m['p99_on']:.3f} vs {m['p99_off']:.3f} (+{m['added_p99']:.3f})")
    h = out["handwritten_pairs"]
    print(f"handwritten pairs: paraphrases {h['paraphrases_hit']}/{h['paraphrases']} hit "
          f"({h['paraphrases_close']} within the threshold); near misses "
          f"{h['near_misses_hit']}/{h['near_misses']} hit ({h['near_misses_close']} within the "
          f"threshold) {h['near_miss_false_hits']}")
    b = out["burst"]
    print(f"bursts ({b['prompts']} prompts x {b['copies']} identical at once): upstream calls "
          f"{b['calls_cache_off']} -> {b['calls_cache_on']}, spend ${b['cost_usd_cache_off']:.4f}"
          f" -> ${b['cost_usd_cache_on']:.4f}")
    r = out["redis"]
    if r is not None:
        m = r["miss_ms"]
        print(f"redis backend: {r['hits']} hits (memory: {r['hits_memory']}); a miss: p50 "
              f"{m['p50_on']:.3f} ms vs {m['p50_off']:.3f} off, p99 {m['p99_on']:.3f} vs "
              f"{m['p99_off']:.3f}; one bare Redis PING in the same loop: p50 "
              f"{r['ping_ms_p50']:.3f} ms")


if __name__ == "__main__":
    main()
