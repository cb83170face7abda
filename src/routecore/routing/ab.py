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
    if not isinstance(node, dict):
        raise ConfigError(["ab: must be a mapping"])
    problems = [f"ab.{k}: unknown field (allowed: candidate, sticky_by)"
                for k in node if k not in ("candidate", "sticky_by")]
    cand = node.get("candidate")
    target, share = "", 0.0
    if not isinstance(cand, dict):
        problems.append("ab.candidate: is required (a mapping with artifact and share)")
    else:
        problems += [f"ab.candidate.{k}: unknown field (allowed: artifact, share)"
                     for k in cand if k not in ("artifact", "share")]
        art = cand.get("artifact")
        if not isinstance(art, str) or not art:
            problems.append("ab.candidate.artifact: must be a non-empty string (artifact "
                            f"directory or one of {', '.join(STRATEGIES)})")
        elif art not in STRATEGIES and not Path(art).exists():
            problems.append(f"ab.candidate.artifact: {art!r} is neither a strategy nor an "
                            "existing artifact directory")
        else:
            target = art
        raw_share = cand.get("share", 0.1)
        if isinstance(raw_share, bool) or not isinstance(raw_share, (int, float)):
            problems.append("ab.candidate.share: must be a number")
        elif not 0.0 <= float(raw_share) <= 1.0:
            problems.append(f"ab.candidate.share: must be in [0, 1], got {raw_share}")
        else:
            share = float(raw_share)
    sticky = node.get("sticky_by", "user")
    if sticky not in ("user", "tenant"):
        problems.append(f"ab.sticky_by: must be user or tenant, got {sticky!r}")
    if problems:
        raise ConfigError(problems)
    return ABConfig(candidate=target, share=share, sticky_by=str(sticky))


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
