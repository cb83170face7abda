"""Generate docs/config.md from the config validator itself, so the reference cannot drift.

    python scripts/gen_config_docs.py           # rewrite docs/config.md
    python scripts/gen_config_docs.py --check   # exit 1 when it is stale (what the test does)

How: every section is validated by `routecore.config._Reader` calls (`get`,
`number`, `strings`, `mapping`, `unknown`), each naming the key's path, type,
default and bounds. This script runs `routecore check-config`'s validation over
EXAMPLE (every section present, every named map with one `NAME_` entry) while
recording those calls, and renders what the validator read. Meanings come from
docs/config_meanings.yaml, one line per key: a key the validator reads without a
meaning there, or a meaning for a key it no longer reads, is an error naming it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "config.md"
MEANINGS = ROOT / "docs" / "config_meanings.yaml"

# Every section present, so its validator reads every key (absent keys are read with
# their defaults). Names of your choosing are spelled NAME_...: they render as <name>.
EXAMPLE = f"""
router_version: v1
classifier: {{mode: cascade, llm: {{model: NAME_model, local: combined}}}}
categories:
  NAME_category: {{exemplars: ["an example prompt"], keywords: [word], patterns: ["x+"]}}
routing:
  complexity_tiers: [{{max_complexity: 1.0, models: [NAME_model]}}]
  domains: {{NAME_category: [NAME_model]}}
  weights: {{}}
  learned: {{}}
models:
  NAME_model:
    provider: NAME_endpoint
    price: {{input: 1.0, output: 2.0, long_context: {{above_input_tokens: 500, input: 2, output: 4}}}}
    context_window: 1000
    capabilities: [json]
    quality: {{default: 0.5, NAME_category: 0.6}}
    latency: {{p50_ms: 1, p95_ms: 2}}
    rate_limits: {{}}
    fallbacks: [NAME_other]
    deployments: [{{endpoint: NAME_endpoint}}]
    sim: {{}}
  NAME_other:
    provider: NAME_endpoint
    price: {{input: 1.0, output: 2.0, tiers: [{{above_input_tokens: 500, input: 2, output: 4}}]}}
    context_window: 1000
    quality: {{default: 0.5}}
    latency: {{p50_ms: 1, p95_ms: 2}}
    deployments:
      - name: NAME_deployment
        endpoint: NAME_endpoint
        provider: NAME_vendor
        price: {{input: 0.5, output: 1.0, tiers: [{{above_input_tokens: 500, input: 1, output: 2}}]}}
        latency: {{p50_ms: 1, p95_ms: 2}}
        rate_limits: {{rpm: 60, tpm: 100000}}
  NAME_versioned:
    provider: NAME_endpoint
    versions:
      NAME_version: {{model_id: x-1, price: {{input: 1.0, output: 2.0}}}}
      NAME_next: {{model_id: x-2}}
    pinned: NAME_version
    price: {{input: 1.0, output: 2.0}}
    context_window: 1000
    quality: {{default: 0.5}}
    latency: {{p50_ms: 1, p95_ms: 2}}
endpoints:
  NAME_endpoint: {{kind: simulated, options: {{}}}}
server: {{tls: {{cert: "{__file__}", key: "{__file__}"}}}}  # files that exist
cascade: {{}}
ensemble: {{}}
resilience: {{retry: {{}}, breaker: {{}}, rate_limit: {{}}, load_balance: {{}}}}
feedback: {{path: feedback.db}}
ab: {{candidate: {{artifact: cost}}}}
state: {{}}
audit: {{}}
metrics: {{}}
telemetry: {{}}
cache: {{exact: {{}}, semantic: {{categories: [NAME_category]}}}}
alerts: {{}}
compress: {{categories: {{NAME_category: {{target_ratio: 0.5}}}}}}
rollout: {{model: NAME_versioned, to: NAME_next, share: 0.05, step: {{share: 0.05, every_s: 3600}}}}
shadow: {{model: NAME_other, judge: NAME_model, share: 0.05, max_usd_per_day: 5}}
auth:
  keys: [{{id: NAME_key, sha256: "{hashlib.sha256(b"example").hexdigest()}", tenant: NAME_tenant}}]
budgets:
  tenants: {{NAME_tenant: {{usd_per_day: 1}}}}
  users: {{NAME_user: {{usd_per_day: 1}}}}
  keys: {{NAME_key: {{usd_per_day: 1}}}}
  default: {{usd_per_day: 1}}
  pacing: {{}}
load: {{}}
"""


@dataclass
class Key:
    path: str
    kind: str = ""
    default: Any = ...
    defaults: set[str] = field(default_factory=set)
    lo: float | None = None
    hi: float | None = None


class Schema:
    """What the validator read, by normalised path, in first-read order."""

    def __init__(self) -> None:
        self.keys: dict[str, Key] = {}

    def key(self, raw: str) -> Key:
        path = normalise(raw)
        if path not in self.keys:
            self.keys[path] = Key(path)
        return self.keys[path]


def normalise(raw: str) -> str:
    """`models.NAME_model.deployments[0].endpoint` -> `models.<name>.deployments[].endpoint`."""
    return re.sub(r"\[\d+\]", "[]", re.sub(r"NAME_\w+", "<name>", raw))


def _kind(kind: Any) -> str:
    names = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list",
             dict: "mapping"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


@contextlib.contextmanager
def recording() -> Iterator[Schema]:
    """Record every read of the config validator while the block runs."""
    from routecore.config import _Reader

    schema = Schema()
    orig = {n: getattr(_Reader, n) for n in ("mapping", "get", "number", "strings", "unknown")}

    def full(path: str, key: str) -> str:
        return f"{path}.{key}" if path else key

    def mapping(self: Any, node: Any, path: str, required: bool = True) -> Any:
        if path and path != "(root)":
            k = schema.key(path)
            k.kind = k.kind or "mapping"
            if required and k.default is ...:
                k.default = "required"
        return orig["mapping"](self, node, path, required)

    def get(self: Any, node: Any, key: str, path: str, kind: Any, default: Any = ...) -> Any:
        k = schema.key(full(path, key))
        k.kind = _kind(kind)
        k.defaults.add(_fmt(default))
        return orig["get"](self, node, key, path, kind, default)

    def number(self: Any, node: Any, key: str, path: str, *, lo: float | None = None,
               hi: float | None = None, default: Any = ..., integer: bool = False) -> Any:
        out = orig["number"](self, node, key, path, lo=lo, hi=hi, default=default,
                             integer=integer)
        k = schema.key(full(path, key))
        k.lo, k.hi = lo, hi
        return out

    def strings(self: Any, node: Any, key: str, path: str, default: Any = ()) -> Any:
        out = orig["strings"](self, node, key, path, default)
        schema.key(full(path, key)).kind = "list of strings"
        return out

    def unknown(self: Any, node: Any, path: str, allowed: set[str]) -> Any:
        for name in sorted(allowed):  # allowed but read another way (sim, options): listed too
            k = schema.key(full(path, name))
            k.kind = k.kind or "mapping"
        return orig["unknown"](self, node, path, allowed)

    for name, fn in (("mapping", mapping), ("get", get), ("number", number),
                     ("strings", strings), ("unknown", unknown)):
        setattr(_Reader, name, fn)
    try:
        yield schema
    finally:
        for name, fn in orig.items():
            setattr(_Reader, name, fn)


def _fmt(v: Any) -> str:
    if v is ...:
        return "required"
    if v is None:
        return "unset"
    if isinstance(v, str) and v.startswith("NAME_"):
        return "(its name)"
    return "`" + json.dumps(list(v) if isinstance(v, tuple) else v) + "`"


def read_schema() -> Schema:
    """Validate EXAMPLE as `routecore check-config` does, recording every read."""
    from routecore.cli import validate_all
    from routecore.config import SECTIONS, parse_config

    raw = yaml.safe_load(EXAMPLE)
    missing = sorted(SECTIONS - set(raw))
    if missing:
        raise SystemExit(f"scripts/gen_config_docs.py: EXAMPLE lacks section(s) {missing}; "
                         "add each with its keys so the reference covers it")
    with recording() as schema:
        for name in raw:  # the section headers, in EXAMPLE order
            schema.key(name).kind = schema.key(name).kind or "mapping"
        config = parse_config(raw, "<example>")
        validate_all(config)
    # A nested mapping whose keys are listed says nothing of its own: drop it.
    parents = {re.sub(r"(\.[^.\[]+|\[\])$", "", p) for p in schema.keys}
    for path, k in list(schema.keys.items()):
        if k.kind == "mapping" and path in parents and re.search(r"[.\[]", path):
            del schema.keys[path]
    return schema


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _type(k: Key) -> str:
    t = k.kind or "mapping"
    if k.lo is not None and k.hi is not None:
        return f"{t} in [{_num(k.lo)}, {_num(k.hi)}]"
    if k.lo is not None:
        return f"{t} >= {_num(k.lo)}"
    if k.hi is not None:
        return f"{t} <= {_num(k.hi)}"
    return t


def _default(k: Key) -> str:
    if k.defaults:
        return next(iter(k.defaults)) if len(k.defaults) == 1 else "(varies)"
    return "required" if k.default == "required" else "-"


def load_meanings() -> dict[str, str]:
    doc = yaml.safe_load(MEANINGS.read_text("utf-8")) or {}
    return {str(k): str(v) for k, v in doc.items()}


def problems(schema: Schema, meanings: dict[str, str]) -> list[str]:
    """Keys read without a meaning, and meanings of keys no longer read."""
    out = [f"docs/config_meanings.yaml: add a line  {p}: <what it means>"
           for p in schema.keys if p not in meanings]
    out += [f"docs/config_meanings.yaml: {p} is not read by the validator any more; remove it"
            for p in meanings if p not in schema.keys]
    return out


def render(schema: Schema, meanings: dict[str, str]) -> str:
    lines = ["# Configuration reference", "",
             "Generated by `python scripts/gen_config_docs.py` from the validator itself (every",
             "key, type, bound and default below is what `routecore check-config` reads); meanings",
             "come from `docs/config_meanings.yaml`. A test fails when this file is stale.",
             "`<name>` is a name you choose; `[]` is an item of a list. Every section is",
             "optional unless marked required; unknown sections and keys are errors.", ""]
    sections: dict[str, list[Key]] = {}
    for k in schema.keys.values():
        sections.setdefault(re.split(r"[.\[]", k.path, maxsplit=1)[0], []).append(k)
    for section, keys in sections.items():
        head = schema.keys.get(section)
        lines += [f"## `{section}`", ""]
        if head is not None and section in meanings:
            lines += [meanings[section], ""]
        rows = [k for k in keys if k.path != section]
        if not rows:
            lines += [f"Type: {_type(head) if head else ''}; default: "
                      f"{_default(head) if head else ''}.", ""]
            continue
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for k in rows:
            meaning = meanings.get(k.path, "").replace("|", "\\|")
            lines.append(f"| `{k.path}` | {_type(k)} | {_default(k)} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/config.md is stale")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    schema = read_schema()
    meanings = load_meanings()
    bad = problems(schema, meanings)
    if bad:
        print("\n".join(bad), file=sys.stderr)
        return 1
    text = render(schema, meanings)
    if args.check:
        stale = not DOC.exists() or DOC.read_text("utf-8") != text
        if stale:
            print("docs/config.md is stale: run python scripts/gen_config_docs.py",
                  file=sys.stderr)
        return 1 if stale else 0
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text, "utf-8")
    print(f"wrote {DOC.relative_to(ROOT)} ({len(schema.keys)} keys)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
