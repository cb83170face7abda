"""`routecore rollout status`: each model's versions and their live traffic shares.

    routecore rollout status                    # the server on 127.0.0.1:50051
    routecore rollout status --addr host:port --json

Asks a running server (ListModels), so the shares are the ones it applies now
(a stepped rollout's share rises while it runs; a reload restarts its schedule).
The rolled-out version also shows its state: rolling, complete, held or
rolled_back (a detected quality regression stopped it; the reason follows).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from routecore.server.connect import add_connection_args, unary


def add_commands(sub: Any) -> None:
    """Register `rollout status` on an argparse subparsers object."""
    rollout = sub.add_parser("rollout", help="staged rollouts of model versions")
    rsub = rollout.add_subparsers(dest="rollout_command", required=True)
    p = rsub.add_parser("status", help="each model's versions, the pinned one, and live shares",
                        description="Ask a running server (ListModels) for each model's "
                                    "versions, the pinned one, the live traffic shares and "
                                    "any rollback with its reason.")
    add_connection_args(p)
    p.add_argument("--all", action="store_true", help="also models with a single version")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_status)


def _cmd_status(ns: argparse.Namespace) -> int:
    from routecore.v1 import router_pb2 as pb

    models = unary(ns, "ListModels", pb.ListModelsRequest(), 10.0).models
    rows = [{"model": m.name, "pinned": m.version,
             "versions": [{"name": v.name, "model_id": v.model_id, "share": v.share,
                           "pinned": v.pinned, "rollout_state": v.rollout_state,
                           "rollout_reason": v.rollout_reason} for v in m.versions]}
            for m in models if ns.all or len(m.versions) > 1]
    if ns.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(row["model"])
        for v in row["versions"]:
            mark = " (pinned)" if v["pinned"] else ""
            state = f" [{v['rollout_state']}]" if v["rollout_state"] else ""
            print(f"  {v['name']:<24} {v['share'] * 100:6.2f}%  {v['model_id']}{mark}{state}")
            if v["rollout_reason"]:
                print(f"    {v['rollout_reason']}")
    return 0
