"""Offline replay: the logged traffic through a candidate router, before anything ships.

    routecore replay --audit PATH|DSN --config candidate.yaml [--artifact DIR] [--since 7d] [--json]

Every logged Route, Complete and CompleteStream that succeeded is routed again
by a `Router` built from the candidate config, through `Router.route` (the
server's own path) when the audit kept the prompt (`audit.store_prompts`), else
through `Router.route_classified` with the logged classifier output (category
probabilities, confidence, complexity) and token count: the same policy,
constraints and strategies, without the learned strategy (it reads the prompt).

The report: how many decisions change and to which models; the traffic's cost
as served (Complete: what it cost; Route: the logged estimate) against as the
candidate would route it (Complete: the same tokens at the new model's price;
Route: the candidate's estimate); and quality: a request's own feedback score
when it has one and keeps its model, else the mean feedback score of that
model in that category when the log holds at least `MIN_FEEDBACK` of them, else
the router's predicted quality. Totals, per tenant and per category.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from routecore.config import Config, load_config
from routecore.domain import Classification, Constraints, Message, RouteRequest, Weights
from routecore.errors import RoutecoreError
from routecore.observe.record import DECISION_RPCS, category_scores
from routecore.observe.settings import parse_audit
from routecore.observe.store import rows
from routecore.routing.router import Router

MIN_FEEDBACK = 5
REPLAYED = ("Route", "RouteBatch", "Complete", "CompleteStream")
_COLUMNS = ("request_id", "rpc", "status", "tenant", "user", "key_id", "category",
            "category_confidence", "complexity", "model", "served_model", "predicted_quality",
            "estimated_cost_usd", "input_tokens", "output_tokens", "cost_usd", "prompt",
            "features", "feedback", "candidates", "candidate_numbers")


@dataclass
class Group:
    requests: int = 0
    changed: int = 0
    cost_served: float = 0.0
    cost_candidate: float = 0.0
    quality_served: float = 0.0
    quality_candidate: float = 0.0

    def add(self, changed: bool, cs: float, cc: float, qs: float, qc: float) -> None:
        self.requests += 1
        self.changed += changed
        self.cost_served += cs
        self.cost_candidate += cc
        self.quality_served += qs
        self.quality_candidate += qc

    def report(self) -> dict[str, Any]:
        n = max(self.requests, 1)
        return {"requests": self.requests, "changed": self.changed,
                "changed_share": round(self.changed / n, 4),
                "cost_served_usd": round(self.cost_served, 6),
                "cost_candidate_usd": round(self.cost_candidate, 6),
                "cost_change": round(self.cost_candidate / self.cost_served - 1, 4)
                if self.cost_served > 0 else None,
                "quality_served": round(self.quality_served / n, 4),
                "quality_candidate": round(self.quality_candidate / n, 4)}


@dataclass
class Replay:
    total: Group = field(default_factory=Group)
    tenants: dict[str, Group] = field(default_factory=lambda: defaultdict(Group))
    categories: dict[str, Group] = field(default_factory=lambda: defaultdict(Group))
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)
    exact: int = 0
    from_features: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def report(self, seconds: float) -> dict[str, Any]:
        return {"replayed": self.total.requests, "with_prompt": self.exact,
                "from_features": self.from_features, "skipped": dict(self.skipped),
                "seconds": round(seconds, 2), **self.total.report(),
                "moves": [{"from": a, "to": b, "requests": n}
                          for (a, b), n in self.moves.most_common()],
                "by_tenant": {k: g.report() for k, g in sorted(self.tenants.items())},
                "by_category": {k: g.report() for k, g in sorted(self.categories.items())}}


def _request(rec: dict[str, Any], feats: dict[str, Any]) -> RouteRequest:
    c = feats.get("constraints", {})
    w = feats.get("weights")
    chat = feats.get("chat")
    return RouteRequest(
        prompt="" if chat else rec["prompt"],
        messages=tuple(Message(r, t) for r, t in chat) if chat else (),
        tenant=rec["tenant"], user=rec["user"], key_id=rec["key_id"],
        strategy=feats.get("requested_strategy", ""),
        constraints=Constraints(
            max_cost_usd=c.get("max_cost_usd"), max_latency_ms=c.get("max_latency_ms"),
            min_quality=c.get("min_quality"), max_output_tokens=c.get("max_output_tokens"),
            required_capabilities=frozenset(c.get("required_capabilities", ())),
            allow_models=frozenset(c.get("allow_models", ())),
            deny_models=frozenset(c.get("deny_models", ()))),
        request_id=rec["request_id"], willingness_to_pay=feats.get("willingness_to_pay"),
        weights=Weights(*w) if w else None)


class Replayer:
    def __init__(self, config: Config) -> None:
        self.router = Router.from_config(config)
        self.categories = tuple(config.categories)

    def _classification(self, rec: dict[str, Any]) -> Classification:
        cat, conf = rec["category"], float(rec["category_confidence"])
        scores: dict[str, float] = category_scores(rec["candidates"],
                                                   rec["candidate_numbers"])
        if not scores:  # a record without them: spread the rest evenly
            others = [c for c in self.categories if c != cat]
            rest = (1.0 - conf) / len(others) if others else 0.0
            scores = {c: rest for c in others}
            scores[cat] = conf
        return Classification(cat, float(rec["complexity"]), conf, scores)

    async def run(self, target: str, since: float | None = None) -> Replay:
        out = Replay()
        feedback: dict[str, tuple[str, float]] = {}  # request id -> (model, score)
        by_model: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
        logged: list[dict[str, Any]] = []
        async for row in rows(target, _COLUMNS, since):
            rec = dict(zip(_COLUMNS, row, strict=True))
            if rec["rpc"] == "Feedback" and rec["status"] == "OK":
                note = _json(rec["feedback"])
                if isinstance(note.get("score"), (int, float)):
                    feedback[str(note.get("ref_request_id", ""))] = (rec["model"], note["score"])
            elif rec["rpc"] in REPLAYED and rec["status"] == "OK" and rec["model"]:
                logged.append(rec)
        cats = {r["request_id"]: r["category"] for r in logged}
        for rid, (model, score) in feedback.items():
            if rid in cats:
                acc = by_model[(model, cats[rid])]
                acc[0] += score
                acc[1] += 1
        quality = {k: s / n for k, (s, n) in by_model.items() if n >= MIN_FEEDBACK}
        specs = self.router.config.models
        for rec in logged:
            feats = _json(rec["features"])
            req = _request(rec, feats)
            try:
                if rec["prompt"] or feats.get("chat"):
                    d = self.router.route(req)
                    out.exact += 1
                else:
                    out_est = feats.get("output")
                    d = self.router.route_classified(
                        req, self._classification(rec), int(rec["input_tokens"]),
                        (int(out_est[0]), str(out_est[1])) if out_est else None)
                    out.from_features += 1
            except RoutecoreError as exc:
                out.skipped[type(exc).__name__] += 1
                continue
            served = rec["served_model"] or rec["model"]
            if rec["rpc"] in DECISION_RPCS:
                cost_served, cost_new = rec["estimated_cost_usd"], d.estimated_cost_usd
            else:
                spec = specs[d.model]
                cost_served = rec["cost_usd"]
                cost_new = (rec["input_tokens"] * spec.price.input
                            + rec["output_tokens"] * spec.price.output) / 1e6
            own = feedback.get(rec["request_id"])
            cat = rec["category"]
            q_served = own[1] if own and own[0] == served else \
                quality.get((served, cat), rec["predicted_quality"])
            q_new = q_served if d.model == rec["model"] else \
                quality.get((d.model, cat), d.predicted_quality)
            changed = d.model != rec["model"]
            if changed:
                out.moves[(rec["model"], d.model)] += 1
            for g in (out.total, out.tenants[rec["tenant"]], out.categories[cat]):
                g.add(changed, cost_served, cost_new, q_served, q_new)
        return out


def _json(v: Any) -> dict[str, Any]:
    out = json.loads(v) if isinstance(v, str) else (v or {})
    return out if isinstance(out, dict) else {}


def add_commands(sub: Any) -> None:
    p = sub.add_parser("replay", help="replay the audit trail through a candidate config")
    p.add_argument("--audit", default=None, help="SQLite path or postgresql:// DSN "
                   "(default: the audit target of the built-in config)")
    p.add_argument("--config", "-c", required=True, help="the candidate config YAML")
    p.add_argument("--artifact", default=None, metavar="DIR",
                   help="a learned-router artifact: the candidate routes with it (strategy "
                        "learned; it reads prompts, so records without one are skipped)")
    p.add_argument("--since", default=None, help="24h, 7d, 2026-11-30, or epoch seconds")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_replay)


def with_artifact(config: Config, artifact: str) -> Config:
    """`config` routing with the learned router in `artifact` by default."""
    routing = config.routing
    return replace(config, routing=replace(
        routing, default_strategy="learned", learned=replace(routing.learned, artifact=artifact)))


def _cmd_replay(ns: argparse.Namespace) -> int:
    from routecore.observe.commands import parse_since

    target = ns.audit or parse_audit(load_config(None)).target
    since = parse_since(ns.since) if ns.since else None
    t0 = time.perf_counter()
    config = load_config(ns.config)
    if ns.artifact:
        config = with_artifact(config, ns.artifact)
    result = asyncio.run(Replayer(config).run(target, since))
    report = result.report(time.perf_counter() - t0)
    if ns.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"replayed {report['replayed']} requests in {report['seconds']} s "
          f"({report['with_prompt']} with the prompt, {report['from_features']} from features; "
          f"skipped {report['skipped'] or 'none'})")
    print(f"decisions changed: {report['changed']} ({report['changed_share']:.1%})")
    for m in report["moves"][:10]:
        print(f"  {m['from']:>24} -> {m['to']:<24} {m['requests']}")
    print(f"cost: served ${report['cost_served_usd']:.6f} -> candidate "
          f"${report['cost_candidate_usd']:.6f} ({_pct(report['cost_change'])})")
    print(f"quality: served {report['quality_served']:.3f} -> candidate "
          f"{report['quality_candidate']:.3f}")
    for title, key in (("tenant", "by_tenant"), ("category", "by_category")):
        print(f"{title:16} {'requests':>8} {'changed':>8} {'cost change':>12} "
              f"{'quality':>15}")
        for name, g in report[key].items():
            print(f"{(name or '-')[:16]:16} {g['requests']:8d} {g['changed']:8d} "
                  f"{_pct(g['cost_change']):>12} "
                  f"{g['quality_served']:.3f} -> {g['quality_candidate']:.3f}")
    return 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1%}"
