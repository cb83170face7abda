"""CLI: `routecore audit export` and `routecore audit summary`.

    routecore audit export  [--db PATH|DSN] [--since 24h|2026-11-30|EPOCH] [--tenant T] --format jsonl
    routecore audit summary [--db PATH|DSN] [--since ...] [--tenant T] [--json]

`summary` also counts and lists quality regression alerts (observe/regression.py)
stored in the trail: who regressed, on which signal, and what the rollout did.

`--db` defaults to the audit target of `--config` (or of the built-in config:
the SQLite file under the state directory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

from routecore.errors import InvalidRequest

_REL = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_since(text: str, now: float | None = None) -> float:
    """An epoch from `90m`/`24h`/`7d` (ago), an ISO date or time (UTC if no zone), or epoch seconds."""
    now = time.time() if now is None else now
    m = _REL.match(text.strip())
    if m:
        return now - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"--since: {text[:60]!r} is not 24h/7d, an ISO date or epoch seconds")\
            from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def add_commands(sub: Any) -> None:
    p = sub.add_parser("audit", help="read the audit trail: export, summary")
    asub = p.add_subparsers(dest="audit_command", required=True)
    for name, helptext in (("export", "every record as JSON lines"),
                           ("summary", "requests, spend and tokens by day, tenant and model; "
                                       "shadow evaluations and their spend apart")):
        q = asub.add_parser(name, help=helptext)
        q.add_argument("--db", default=None, help="SQLite path or postgresql:// DSN "
                       "(default: the config's audit target)")
        q.add_argument("--config", "-c", default=None, help="config YAML naming the audit target")
        q.add_argument("--since", default=None, help="24h, 7d, 2026-11-30, or epoch seconds")
        q.add_argument("--tenant", default=None, help="only this tenant's records")
        if name == "export":
            q.add_argument("--format", choices=("jsonl",), default="jsonl",
                           help="output format (default: jsonl)")
            q.set_defaults(func=_cmd_export)
        else:
            q.add_argument("--json", action="store_true", help="print the summary as JSON")
            q.set_defaults(func=_cmd_summary)


def _target(ns: argparse.Namespace) -> str:
    if ns.db:
        return str(ns.db)
    from routecore.config import load_config
    from routecore.observe.settings import parse_audit

    return parse_audit(load_config(ns.config)).target


def _cmd_export(ns: argparse.Namespace) -> int:
    from routecore.observe.store import documents

    since = parse_since(ns.since) if ns.since else None
    out = sys.stdout

    async def run() -> int:
        n = 0
        async for doc in documents(_target(ns), since, ns.tenant):
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")
            n += 1
        return n

    n = asyncio.run(run())
    print(f"{n} records", file=sys.stderr)
    return 0


def _cmd_summary(ns: argparse.Namespace) -> int:
    from routecore.observe.store import alerts, summary

    since = parse_since(ns.since) if ns.since else None
    target = _target(ns)
    rows = asyncio.run(summary(target, since, ns.tenant))
    if ns.json:  # each row counts its alerts; the list below is for people
        print(json.dumps(rows, indent=2))
        return 0
    found = asyncio.run(alerts(target, since)) if ns.tenant is None else []
    print(f"{'day':10} {'tenant':16} {'model':24} {'requests':>8} {'errors':>6} "
          f"{'feedback':>8} {'spend $':>10} {'est. $':>10} {'in tok':>9} {'out tok':>9} "
          f"{'shadow':>6} {'shadow $':>10} {'alerts':>6}")
    for r in rows:
        print(f"{r['day']:10} {(r['tenant'] or '-')[:16]:16} {(r['model'] or '-')[:24]:24} "
              f"{r['requests']:8d} {r['errors']:6d} {r['feedback']:8d} {r['spend_usd']:10.6f} "
              f"{r['estimated_usd']:10.6f} {r['input_tokens']:9d} {r['output_tokens']:9d} "
              f"{r['shadow_evals']:6d} {r['shadow_spend_usd']:10.6f} {r['alerts']:6d}")
    if found:
        print(f"\nquality regressions ({len(found)}):")
        for a in found:
            when = datetime.fromtimestamp(a["ts"], UTC).strftime("%Y-%m-%d %H:%M:%S")
            f = a["features"]
            print(f"  {when} {a['model']}@{a['model_version']} {a['category'] or '-'} "
                  f"{f.get('kind', '?')}: {f.get('recent_mean', 0):.3f} vs baseline "
                  f"{f.get('baseline_mean', 0):.3f}; action: {f.get('action', 'none')}")
    return 0
