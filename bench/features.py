"""Benchmark feature extraction and phrase matching, C vs pure twin.

    python bench/features.py [--dim 1024] [--json]

On 100 / 2,000 / 20,000-char prompts: extract(), then PhraseMatcher.counts
with ~120 phrases (the C default, the pure twin, and the regex alternation it
replaces in the classifier). Reports the p50 and p99 wall time per call
(perf_counter_ns) and the Py/C ratio measured in the same run, so a noisy
machine hurts both alike.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Callable

import numpy as np

from routecore import _fast
from routecore._fast import _constants
from routecore.routing.phrases import PhraseMatcher

_SAMPLE = (
    "Write a Python function that parses a CSV file and returns the average of each "
    "numeric column. Explain your approach step by step, then list edge cases.\n"
    "```python\ndef mean(xs):\n    return sum(xs) / len(xs)\n```\n"
    "What is the derivative of x^2 + 3x? Réponds aussi en français, 中文也可以。 "
)


def make_prompt(n: int) -> str:
    return (_SAMPLE * (n // len(_SAMPLE) + 1))[:n]


def timeit(fn: object, text: str, dim: int, reps: int) -> tuple[float, float]:
    f = fn  # keep the call site monomorphic
    times = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        f(text, dim)  # type: ignore[operator]
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return statistics.median(times) / 1000.0, times[int(0.99 * (len(times) - 1))] / 1000.0


# ~120 classifier-style phrases: the features' keyword lists plus multiword ones.
PHRASES: tuple[str, ...] = tuple(
    dict.fromkeys(
        _constants.CODE_KEYWORDS
        + _constants.MATH_WORDS
        + _constants.IMPERATIVE_WORDS
        + _constants.WH_WORDS
        + (
            "step by step",
            "stack trace",
            "how are you",
            "tl;dr",
            "in french",
            "python function",
            "edge cases",
            "unit test",
            "time complexity",
            "big o notation",
            "write a poem",
            "short story",
            "pros and cons",
            "thank you",
            "what is the",
            "average of each",
            "regular expression",
            "machine learning",
            "linked list",
            "binary search tree",
        )
    )
)


def time_call(f: Callable[[str], object], text: str, reps: int) -> tuple[float, float]:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        f(text)
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return statistics.median(times) / 1000.0, times[int(0.99 * (len(times) - 1))] / 1000.0


def bench_phrases() -> list[dict[str, object]]:
    matcher = PhraseMatcher(PHRASES)
    table = np.unique(np.array([_fast.phrase_hash(p) for p in PHRASES], dtype=np.uint64))
    alternation = "|".join(sorted((re.escape(p) for p in PHRASES), key=len, reverse=True))
    regex = re.compile(rf"\b(?:{alternation})\b")

    def py(text: str) -> object:
        return _fast.phrase_hitsPy(text, table, 4)

    def rx(text: str) -> object:
        return set(regex.findall(text.lower()))

    rows: list[dict[str, object]] = []
    for n in (100, 2000, 20000):
        text = make_prompt(n)
        c50, c99 = time_call(matcher.counts, text, 5000 if n < 20000 else 1000)
        r50, _r99 = time_call(rx, text, 500 if n < 20000 else 100)
        p50, _p99 = time_call(py, text, 20 if n < 20000 else 3)
        rows.append(
            {
                "chars": n,
                "phrases": len(PHRASES),
                "c_p50_us": round(c50, 2),
                "c_p99_us": round(c99, 2),
                "regex_p50_us": round(r50, 1),
                "py_p50_us": round(p50, 1),
                "speedup": round(p50 / c50, 1),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for n in (100, 2000, 20000):
        text = make_prompt(n)
        c50, c99 = timeit(_fast.extractC, text, args.dim, 2000 if n < 20000 else 300)
        p50, _p99 = timeit(_fast.extractPy, text, args.dim, 20 if n < 20000 else 3)
        rows.append(
            {
                "chars": n,
                "dim": args.dim,
                "c_p50_us": round(c50, 2),
                "c_p99_us": round(c99, 2),
                "py_p50_us": round(p50, 1),
                "speedup": round(p50 / c50, 1),
            }
        )
    phrase_rows = bench_phrases()
    if args.json:
        print(json.dumps({"extract": rows, "phrases": phrase_rows}))
    else:
        print("extract")
        for r in rows:
            print(
                f"{r['chars']:>6} chars  C p50 {r['c_p50_us']:>8.2f} us"
                f"  p99 {r['c_p99_us']:>8.2f} us"
                f"  Py p50 {r['py_p50_us']:>10.1f} us  x{r['speedup']}"
            )
        print(f"PhraseMatcher.counts ({len(PHRASES)} phrases)")
        for p in phrase_rows:
            print(
                f"{p['chars']:>6} chars  C p50 {p['c_p50_us']:>8.2f} us"
                f"  p99 {p['c_p99_us']:>8.2f} us"
                f"  regex p50 {p['regex_p50_us']:>8.1f} us"
                f"  Py p50 {p['py_p50_us']:>10.1f} us  x{p['speedup']}"
            )


if __name__ == "__main__":
    main()
