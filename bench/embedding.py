"""Static sentence embedding speed: `python bench/embedding.py [--json]`.

Per call p50/p99 (wall clock, each call timed alone, the quietest of 3 rounds)
of routecore._fast.embed with the shipped vectors, compiled core vs pure twin,
for English (ASCII) prompts of 100, 2,000 and 20,000 characters and for a
2,000-character accented/Cyrillic one (the Unicode path); plus the one-off
load time of the package data. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from routecore import _fast  # noqa: E402
from routecore.routing.embedding import MAX_TOKENS, _shipped  # noqa: E402

ENGLISH = ("Write a Python function that parses the log file and returns the ten most frequent "
           "error messages, then explain how you would test it on a large input. ")
ACCENTED = "Café crème, naïve résumé — déjà vu! Привет, как дела? Über die Straße gehen wir. "


def make(seed: str, n: int) -> str:
    return (seed * (n // len(seed) + 1))[:n]


def timed(fn: object, table: object, text: str, n: int) -> dict[str, float]:
    best: list[float] | None = None
    for _ in range(3):
        ts = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            fn(table, text, MAX_TOKENS)  # type: ignore[operator]
            ts.append((time.perf_counter_ns() - t0) / 1000)
        ts.sort()
        if best is None or ts[len(ts) // 2] < best[len(best) // 2]:
            best = ts
    assert best is not None
    return {"p50_us": round(best[len(best) // 2], 2), "p99_us": round(best[int(len(best) * 0.99)], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    emb = _shipped()
    load_ms = (time.perf_counter() - t0) * 1000
    tokens = [emb._table]  # the C table, as the router holds it
    vecs = emb._table.vectors if hasattr(emb._table, "vectors") else None
    report: dict[str, object] = {"load_ms": round(load_ms, 1), "dim": emb.dim, "vocab": emb.n_tokens}
    cases = {"ascii_100": make(ENGLISH, 100), "ascii_2000": make(ENGLISH, 2000),
             "ascii_20000": make(ENGLISH, 20000), "unicode_2000": make(ACCENTED, 2000)}
    py_table = None
    if _fast.HAVE_EXTENSIONS and vecs is not None:
        from importlib import resources

        vocab = resources.files("routecore").joinpath("data", "minilm-static.vocab.txt")
        py_table = _fast.EmbedTablePy(vocab.read_text("utf-8").split("\n")[:-1], vecs)
    for name, text in cases.items():
        row: dict[str, object] = {"tokens": len(_fast.embed_ids(tokens[0], text, MAX_TOKENS))}
        if _fast.HAVE_EXTENSIONS:
            row["c"] = timed(_fast.embedC, tokens[0], text, 2000)
        if py_table is not None:
            row["py"] = timed(_fast.embedPy, py_table, text, 50)
        report[name] = row
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"load {report['load_ms']} ms; {emb.n_tokens} tokens x {emb.dim} dims")
    for name in cases:
        print(name, report[name])


if __name__ == "__main__":
    main()
