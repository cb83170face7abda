"""`routecore reload`: ask a running server to re-read its config file (the admin
`Reload` RPC; the same as sending it SIGHUP, but with the outcome as an answer).

    routecore reload                              # the server on 127.0.0.1:50051
    routecore reload --dry-run                    # validate the file, swap nothing
    ROUTECORE_API_KEY=rk-... routecore reload --addr host:port --json
    routecore reload --addr host:443 --tls-ca ca.pem --api-key rk-...   # a TLS server

With auth on, the key must be an admin key (`admin: true` in auth.keys). An
invalid file is reported with each bad field (exit code 2) and the server keeps
its running config.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from routecore.server.connect import add_connection_args, unary


def add_commands(sub: Any) -> None:
    p = sub.add_parser("reload", help="re-read a running server's config file (admin)",
                       description="Ask a running server to re-read, validate and swap in "
                                   "its config file (the admin Reload RPC, as SIGHUP does); "
                                   "an invalid file is refused naming each field and the "
                                   "old config keeps serving.")
    add_connection_args(p)
    p.add_argument("--dry-run", action="store_true", help="validate the file only")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(func=_cmd_reload)


def _cmd_reload(ns: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict

    from routecore.v1 import router_pb2 as pb

    resp = unary(ns, "Reload", pb.ReloadRequest(dry_run=ns.dry_run), ns.timeout)
    if ns.json:
        print(json.dumps(MessageToDict(resp, preserving_proto_field_name=True,
                                       always_print_fields_with_no_presence=True), indent=2))
        return 0
    what = "reloaded" if resp.applied else "valid (dry run, nothing swapped)"
    print(f"{resp.config_path}: {what}: router {resp.router_version}, {resp.models} models")
    if resp.rollout:
        print(f"  rollout {resp.rollout}")
    if resp.alarms_cleared:
        print(f"  {resp.alarms_cleared} quality regression alarms acknowledged")
    if resp.peers_signalled:
        print(f"  SIGHUP sent to {resp.peers_signalled} other workers")
    return 0
