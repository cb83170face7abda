"""Benchmark feature extraction, C vs pure twin, on 100 / 2,000 / 20,000-char prompts.

    python bench/features.py [--dim 1024] [--json]

Reports the p50 and p99 wall time per call (perf_counter_ns) and the Py/C
ratio measured in the same run, so a noisy machine hurts both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from routecore import _fast

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
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print(
                f"{r['chars']:>6} chars  C p50 {r['c_p50_us']:>8.2f} us"
                f"  p99 {r['c_p99_us']:>8.2f} us"
                f"  Py p50 {r['py_p50_us']:>10.1f} us  x{r['speedup']}"
            )


if __name__ == "__main__":
    main()
