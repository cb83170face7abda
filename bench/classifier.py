"""Category accuracy of the classifier, per mode and per category:
`python bench/classifier.py [--modes rule embedding combined] [--json]`.

Two test sets, neither ever used for training:
- the 2,496 prompts of the shared `llmrouter.train.jsonl` whose task names one
  built-in category (gsm8k, math, agentverse-mgsm -> math; mbpp, human_eval ->
  code; agentverse-logicgrid -> reasoning; natural_qa, trivia_qa -> qa), read
  by path from $ROUTECORE_DATA_DIR or ../shared/data/routing (skipped if absent);
- three sets of prompts in everyday wording, each with at least 10 per built-in
  category and none containing its category's keywords: tests/data/
  everyday_prompts.jsonl (the test set), everyday_dev.jsonl (the set the
  category head's training choices were tuned on) and everyday_heldout.jsonl
  (written before the final measurement, never tuned on).

Also prints each mode's classify latency (features + classify, p50/p99 over
2,000-character prompts, wall clock, the quietest of 3 rounds).
Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from routecore.config import CLASSIFIER_MODES, Config, load_config  # noqa: E402
from routecore.learned.data import default_data_dir  # noqa: E402
from routecore.routing.classifier import Classifier  # noqa: E402
from routecore.routing.features import FeatureExtractor  # noqa: E402

TASK_CATEGORY = {
    "gsm8k": "math", "math": "math", "agentverse-mgsm": "math",
    "mbpp": "code", "human_eval": "code",
    "agentverse-logicgrid": "reasoning",
    "natural_qa": "qa", "trivia_qa": "qa",
}
EVERYDAY = {name: ROOT / "tests" / "data" / f"everyday_{file}.jsonl"
            for name, file in (("everyday", "prompts"), ("everyday_dev", "dev"),
                               ("everyday_heldout", "heldout"))}


def load_llmrouter() -> list[tuple[str, str]]:
    path = default_data_dir() / "llmrouter.train.jsonl"
    if not path.exists():
        return []
    out = []
    with path.open() as f:
        for line in f:
            r = json.loads(line)
            cat = TASK_CATEGORY.get(r["source"])
            if cat is not None:
                out.append((r["prompt"], cat))
    return out


def load_everyday(path: Path) -> list[tuple[str, str]]:
    with path.open() as f:
        return [(r["prompt"], r["category"]) for r in map(json.loads, f)]


def classifier_for(cfg: Config, mode: str) -> Classifier:
    c = dataclasses.replace(cfg, classifier=dataclasses.replace(cfg.classifier, mode=mode))
    return Classifier(c, FeatureExtractor(c.classifier.feature_dim))


def accuracy(clf: Classifier, rows: list[tuple[str, str]]) -> dict[str, Any]:
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    confusions: dict[str, Counter[str]] = defaultdict(Counter)
    for text, cat in rows:
        got = clf.classify(text, clf.features(text)).category
        total[cat] += 1
        if got == cat:
            right[cat] += 1
        else:
            confusions[cat][got] += 1
    per = {c: round(right[c] / total[c], 3) for c in sorted(total)}
    return {
        "accuracy": round(sum(right.values()) / max(1, sum(total.values())), 4),
        "per_category": per,
        "n": sum(total.values()),
        "top_confusions": {c: dict(confusions[c].most_common(3)) for c in sorted(confusions)},
    }


def latency(clf: Classifier, texts: list[str]) -> dict[str, float]:
    best: list[float] | None = None
    for _ in range(3):
        times = []
        for t in texts:
            t0 = time.perf_counter_ns()
            clf.classify(t, clf.features(t))
            times.append((time.perf_counter_ns() - t0) / 1000.0)
        times.sort()
        if best is None or times[len(times) // 2] < best[len(best) // 2]:
            best = times
    assert best is not None
    return {"p50_us": round(best[len(best) // 2], 1), "p99_us": round(best[int(len(best) * 0.99)], 1)}


def long_prompts(rows: list[tuple[str, str]], n: int = 500) -> list[str]:
    """2,000-character prompts: test prompts cycled end to end and cut."""
    texts = [t for t, _ in rows] or ["Write a function that sorts a list."]
    out = []
    for i in range(n):
        s, j = "", i
        while len(s) < 2000:
            s += texts[j % len(texts)] + "\n"
            j += 7
        out.append(s[:2000])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--modes", nargs="+", default=list(CLASSIFIER_MODES), choices=CLASSIFIER_MODES)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cfg = load_config(None)
    bench = load_llmrouter()
    everyday = {name: load_everyday(path) for name, path in EVERYDAY.items()}
    longs = long_prompts(bench)
    report: dict[str, Any] = {}
    for mode in args.modes:
        t0 = time.perf_counter()
        clf = classifier_for(cfg, mode)
        build_ms = (time.perf_counter() - t0) * 1000
        report[mode] = {
            "llmrouter": accuracy(clf, bench) if bench else None,
            **{name: accuracy(clf, rows) for name, rows in everyday.items()},
            "classify_2000_chars": latency(clf, longs),
            "build_ms": round(build_ms, 1),
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for mode, r in report.items():
        lat = r["classify_2000_chars"]
        print(f"== {mode}  (build {r['build_ms']} ms; classify at 2,000 chars "
              f"p50 {lat['p50_us']} us, p99 {lat['p99_us']} us)")
        for name in ("llmrouter", *EVERYDAY):
            a = r[name]
            if a is None:
                print(f"  {name}: data not found")
                continue
            per = "  ".join(f"{c} {v:.3f}" for c, v in a["per_category"].items())
            print(f"  {name} ({a['n']}): {a['accuracy']:.4f} | {per}")
            for c, conf in a["top_confusions"].items():
                print(f"      {c} -> {conf}")


if __name__ == "__main__":
    main()
