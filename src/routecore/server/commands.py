"""CLI commands of the server edge: `keys create`.

`routecore.cli` calls `add_commands(subparsers)`; each handler returns an exit code.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml


def add_commands(sub: Any) -> None:
    """Register `keys create` on an argparse subparsers object."""
    keys = sub.add_parser("keys", help="API keys for `auth.keys`")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    p = ksub.add_parser("create", help="print a new random API key once, and its auth.keys entry")
    p.add_argument("--tenant", required=True, help="the tenant the key acts for")
    p.add_argument("--user", default="", help="pin the key to one user of the tenant")
    p.add_argument("--id", dest="key_id", default="",
                   help="the key's id in logs and budgets (default: tenant + digest prefix)")
    p.set_defaults(func=_cmd_keys_create)


def _cmd_keys_create(ns: argparse.Namespace) -> int:
    from routecore.server.identity import key_entry, new_key

    for flag, value in (("--tenant", ns.tenant), ("--user", ns.user), ("--id", ns.key_id)):
        if value != value.strip() or (flag == "--tenant" and not value):
            print(f"routecore: {flag}: must be a non-empty string without surrounding spaces",
                  file=sys.stderr)
            return 2
    key, digest = new_key()
    entry = key_entry(digest, ns.tenant, ns.user, ns.key_id)
    print(f"API key (shown once; only its SHA-256 goes into the config):\n  {key}\n")
    print("Add to auth.keys (or to auth.keys_file):")
    print(yaml.safe_dump([entry], sort_keys=False).rstrip())
    return 0
