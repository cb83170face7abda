"""CLI commands of the learned router: `train`, `eval`, `ab-report`.

`routecore.cli` calls `add_commands(subparsers)`; each handler returns an exit
code and raises routecore errors (the CLI prints them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import numpy as np

# Fewer stored outcomes than this are noise, not a signal worth an artifact.
MIN_FEEDBACK = 50


def add_commands(sub: Any) -> None:
    """Register the learned-router subcommands on an argparse subparsers object."""
    p = sub.add_parser("train", help="train a learned router from outcome JSONL / feedback")
    p.add_argument("--data", action="append", default=[], metavar="FILE",
                   help="training JSONL (repeatable)")
    p.add_argument("--feedback", metavar="DB", default=None,
                   help="also train on outcomes stored in this feedback database")
    p.add_argument("--min-feedback", type=int, default=MIN_FEEDBACK, metavar="N",
                   help=f"refuse a feedback database with fewer records (default {MIN_FEEDBACK})")
    p.add_argument("--out", required=True, metavar="DIR", help="artifact directory to write")
    p.add_argument("--dim", type=_at_least(16), default=None, help="hashed feature dimension")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="train on --train, score on --test via the Router")
    p.add_argument("--train", action="append", required=True, metavar="FILE",
                   help="training JSONL (repeatable)")
    p.add_argument("--test", action="append", required=True, metavar="FILE",
                   help="held-out JSONL to score (repeatable)")
    p.add_argument("--settings", type=_at_least(2), default=51, metavar="N",
                   help="willingness-to-pay settings swept from 0 to 1 (>= 2; default 51)")
    p.add_argument("--dim", type=_at_least(16), default=None,
                   help="hashed feature dimension (default: the trainer's)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--decisions-out", metavar="F", default=None,
                   help="one JSON line per setting and test prompt")
    p.add_argument("--plot", metavar="PNG", default=None, help="cost-quality curve")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("ab-report", help="per-variant A/B counts, cost and feedback score")
    p.add_argument("db", nargs="?", default=None,
                   help="feedback/decision SQLite database (default: the config's feedback.path)")
    p.add_argument("--config", "-c", default=None,
                   help="the serving config: with state.backend redis, the fleet's totals")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_ab_report)


def _at_least(lo: int) -> Any:
    """An argparse type: an integer >= lo (a usage error otherwise, not a traceback)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        return value
    return parse


def feedback_dataset(db: str, minimum: int = 1) -> Any:
    """Stored feedback as a `Dataset` (one observed model per row; unknown costs NaN).

    A row's `source` is metadata about who sent it, not a task family: sources are
    left empty so training assigns families from the prompts.
    """
    from routecore.learned.data import DataError, Dataset
    from routecore.learned.feedback import read_rows_sync

    rows = read_rows_sync(db)
    if len(rows) < max(minimum, 1):
        raise DataError(f"{db}: {len(rows)} feedback records, fewer than the {max(minimum, 1)} "
                        "needed to learn from (collect more, or lower --min-feedback)")
    models = tuple(sorted({r["model"] for r in rows}))
    scores = np.full((len(rows), len(models)), np.nan)
    costs = np.full((len(rows), len(models)), np.nan)
    for i, r in enumerate(rows):
        j = models.index(r["model"])
        scores[i, j] = r["score"]
        if r["cost_usd"] is not None:
            costs[i, j] = r["cost_usd"]
    return Dataset(ids=tuple(f"feedback-{r['feedback_id']}" for r in rows),
                   prompts=tuple(r["prompt"] for r in rows),
                   sources=("",) * len(rows), models=models,
                   scores=scores, costs=costs)


def _cmd_train(ns: argparse.Namespace) -> int:
    from routecore.learned.train import DEFAULT_DIM, train

    extra = feedback_dataset(ns.feedback, ns.min_feedback) if ns.feedback else None
    router = train(ns.data, ns.out, dim=ns.dim or DEFAULT_DIM, progress=not ns.quiet,
                   extra=extra)
    print(f"wrote {ns.out}: {len(router.models)} models, {len(router.tasks)} tasks, "
          f"dim {router.dim}, {router.manifest['n_train']} records")
    return 0


def _cmd_eval(ns: argparse.Namespace) -> int:
    from routecore.learned.evaluate import evaluate
    from routecore.learned.train import DEFAULT_DIM

    res = evaluate(ns.train, ns.test, settings=ns.settings, decisions_out=ns.decisions_out,
                   plot=ns.plot, dim=ns.dim or DEFAULT_DIM, progress=not ns.json)
    if ns.json:
        print(json.dumps(res, indent=2))
        return 0
    crab = res["cost_ratio_at_best"]
    b = res["baselines"]
    print(f"aiq                {res['aiq']:.4f}")
    print(f"quality_max        {res['quality_max']:.4f}")
    print(f"cost_ratio_at_best {'null' if crab is None else f'{crab:.3f}'}")
    print(f"best_single        {b['best_single']['model']} quality "
          f"{b['best_single']['quality']:.4f} cost {b['best_single']['cost']:.6f}")
    print(f"oracle             quality {b['oracle']['quality']:.4f} "
          f"cost {b['oracle']['cost']:.6f}")
    print(f"random             quality {b['random']['quality']:.4f} "
          f"cost {b['random']['cost']:.6f}")
    print(f"({res['n_train']} train, {res['n_test']} test prompts, routed via {res['path']})")
    print()
    print(format_curve(res["curve"]))
    return 0


def format_curve(curve: list[dict[str, float]]) -> str:
    """The cost-quality curve as a table, one row per willingness-to-pay setting, with a
    bar for the score; runs of settings that land on the same point share one row."""
    rows: list[tuple[float, float, float, float]] = []  # first setting, last, cost, quality
    for p in curve:
        if rows and (rows[-1][2], rows[-1][3]) == (p["cost"], p["quality"]):
            rows[-1] = (rows[-1][0], p["setting"], p["cost"], p["quality"])
        else:
            rows.append((p["setting"], p["setting"], p["cost"], p["quality"]))
    qs = [r[3] for r in rows]
    lo, hi = min(qs), max(qs)
    lines = ["curve (willingness_to_pay -> mean cost per prompt, mean score)",
             f"  {'setting':>11}  {'cost $':>10}  {'score':>6}"]
    for a, b, cost, q in rows:
        setting = f"{a:.2f}" if a == b else f"{a:.2f}-{b:.2f}"
        bar = "#" * (1 + round(29 * (q - lo) / (hi - lo))) if hi > lo else "#"
        lines.append(f"  {setting:>11}  {cost:10.6f}  {q:6.4f}  {bar}")
    return "\n".join(lines)


def _cmd_ab_report(ns: argparse.Namespace) -> int:
    from routecore.config import load_config
    from routecore.learned.ab import ab_report, format_report
    from routecore.learned.feedback import default_path, feedback_path
    from routecore.state import parse_state

    config = load_config(ns.config) if ns.config or not ns.db else None
    if config is not None and not ns.db and parse_state(config.extra.get("state")).backend == "redis":
        from routecore.logs import configure_logging

        configure_logging("warning")  # log lines to stderr: stdout is the report
        rep = asyncio.run(_fleet_ab_report(config))
    else:
        db = ns.db or (config and feedback_path(config.extra)) or str(default_path())
        rep = ab_report(db)
    print(json.dumps(rep, indent=2) if ns.json else format_report(rep))
    return 0


async def _fleet_ab_report(config: Any) -> dict[str, dict[str, Any]]:
    """The A/B totals every replica of this config added to in Redis."""
    from routecore.learned.ab import experiment_id
    from routecore.state import RedisBackend, parse_state
    from routecore.state.ab import RedisABTotals

    backend = RedisBackend(parse_state(config.extra.get("state")))
    await backend.start()
    try:
        return await RedisABTotals(backend).report(experiment_id(config))
    finally:
        await backend.aclose()
