"""A/B assignment of router versions: which variant serves a request.

Config section (raw in `Config.extra["ab"]`, validated here)::

    ab:
      candidate: {artifact: path/to/artifact-or-strategy-name, share: 0.1}
      sticky_by: user        # or tenant

A request goes to the candidate when the SHA-256 of its user (or tenant) id,
read as a number in [0, 1), is below `share`: the same user always sees the
same variant, and growing `share` only moves users from control to candidate.
The decision log and the report live in routecore.learned.ab.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routecore.config import _Reader
from routecore.domain import STRATEGIES
from routecore.errors import ConfigError

CONTROL = "control"
CANDIDATE = "candidate"


@dataclass(frozen=True, slots=True)
class ABConfig:
    candidate: str  # an artifact directory or a strategy name
    share: float
    sticky_by: str  # "user" or "tenant"

    @property
    def candidate_is_strategy(self) -> bool:
        return self.candidate in STRATEGIES


def parse_ab(extra: Mapping[str, Any]) -> ABConfig | None:
    """Validate `ab`; None when absent. Raises ConfigError naming each bad path."""
    node = extra.get("ab")
    if node is None:
        return None
    r, p = _Reader(), "ab"
    n = r.mapping(node, p)
    r.unknown(n, p, {"candidate", "sticky_by"})
    cand = r.mapping(n.get("candidate"), f"{p}.candidate")
    r.unknown(cand, f"{p}.candidate", {"artifact", "share"})
    target = r.get(cand, "artifact", f"{p}.candidate", str, "") or ""
    if cand and not target:
        r.fail(f"{p}.candidate.artifact", "must be a non-empty string (artifact directory or "
                                          f"one of {', '.join(STRATEGIES)})")
    elif target and target not in STRATEGIES and not Path(target).exists():
        r.fail(f"{p}.candidate.artifact",
               f"{target!r} is neither a strategy nor an existing artifact directory")
    share = r.number(cand, "share", f"{p}.candidate", lo=0.0, hi=1.0, default=0.1)
    sticky = r.get(n, "sticky_by", p, str, "user")
    if sticky is not None and sticky not in ("user", "tenant"):
        r.fail(f"{p}.sticky_by", f"must be user or tenant, got {sticky!r}")
    if r.problems:
        raise ConfigError(r.problems)
    return ABConfig(candidate=target, share=float(share), sticky_by=str(sticky))


def bucket(key: str) -> float:
    """Deterministic position of `key` in [0, 1)."""
    h = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def assign(cfg: ABConfig, *, user: str = "", tenant: str = "", request_id: str = "") -> str:
    """CONTROL or CANDIDATE, sticky by user/tenant (falls back to the request id)."""
    key = (user if cfg.sticky_by == "user" else tenant) or request_id
    if not key:
        return CONTROL
    return CANDIDATE if bucket(f"ab:{key}") < cfg.share else CONTROL
