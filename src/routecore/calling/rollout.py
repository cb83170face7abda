"""Staged rollout of a model version: `rollout: {model, to, share, step}`.

    rollout:
      model: gpt-4o          # a model with versions
      to: 2024-11-20         # the version rolled out (not the pinned one)
      share: 0.05            # of that model's traffic, from the moment the config is loaded
      step: {share: 0.05, every_s: 3600}   # optional: add 5 points every hour, up to 1

A caller is sticky: the same user (else tenant, else the request) always lands
on the same side at a given share, and as the share rises users only move from
the pinned version to the new one, never back. A call on the new side is sent
with that version's model_id and charged at its price.

Gated by quality: when the regression detector (observe/regression.py) alarms on
the rolled-out version, the rollout rolls back by itself (`alerts.rollback`,
the default: share 0 at once, every caller on the pinned version) or, with
`alerts.rollback: false`, is held (its share stops stepping up). Either state
lasts until a reload (SIGHUP or `routecore reload`) starts the rollout afresh;
rolling back by hand is a config change (share 0, or no rollout) and a reload.
"""

from __future__ import annotations

import datetime
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from routecore.calling.types import CompletionRequest
from routecore.config import Config, ModelSpec, ModelVersion, _Reader
from routecore.domain import Decision


@dataclass(frozen=True, slots=True)
class Rollout:
    model: str
    to: str
    share: float
    step_share: float = 0.0
    step_every_s: float = 0.0
    started: float = 0.0  # clock() when the config was loaded

    def share_at(self, now: float) -> float:
        """The share of traffic on `to` at `now`: `share` plus one step per period, capped at 1."""
        if self.step_share <= 0 or self.step_every_s <= 0:
            return self.share
        steps = int(max(0.0, now - self.started) // self.step_every_s)
        return min(1.0, self.share + steps * self.step_share)


def parse_rollout(node: Any, config: Config, problems: list[str],
                  clock: Callable[[], float] = time.monotonic) -> Rollout | None:
    """Validate the `rollout` section (None: no rollout); problems name the exact field."""
    if node is None:
        return None
    r = _Reader()
    n = r.mapping(node, "rollout")
    r.unknown(n, "rollout", {"model", "to", "share", "step"})
    model = r.get(n, "model", "rollout", str)
    to_raw = r.get(n, "to", "rollout", (str, datetime.date))  # YAML reads 2024-11-20 as a date
    to = None if to_raw is None else str(to_raw)
    share = r.number(n, "share", "rollout", lo=0.0, hi=1.0)
    step = r.mapping(n.get("step"), "rollout.step", required=False)
    r.unknown(step, "rollout.step", {"share", "every_s"})
    step_share = r.number(step, "share", "rollout.step", lo=0.0, hi=1.0, default=0.0) \
        if step else 0.0
    every = r.number(step, "every_s", "rollout.step", lo=1.0) if step else 0.0
    spec = config.models.get(model) if model else None
    if model and spec is None:
        r.fail("rollout.model", f"unknown model {model!r}")
    elif spec is not None and not spec.versions:
        r.fail("rollout.model", f"{model!r} has no versions to roll out")
    elif spec is not None and to is not None:
        if to not in spec.versions:
            r.fail("rollout.to", f"must name a version of {model} "
                                 f"(one of: {', '.join(spec.versions)}), got {to!r}")
        elif to == spec.version:
            r.fail("rollout.to", f"{to!r} is already pinned")
    problems.extend(r.problems)
    if r.problems or model is None or to is None or share is None:
        return None
    return Rollout(model, to, share, step_share or 0.0, every or 0.0, clock())


def bucket(model: str, who: str) -> float:
    """The caller's fixed place in [0, 1) for `model`: a user below the share is on `to`."""
    digest = hashlib.sha256(f"{model}\x00{who}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True, slots=True)
class Stopped:
    """A rollout a regression stopped: `share` is what it keeps (0 rolled back)."""

    state: str  # "rolled_back" or "held"
    share: float
    reason: str
    at: float  # unix seconds


class Rollouts:
    """Which version of a model serves a caller, and each version's share now."""

    def __init__(self, rollout: Rollout | None, models: Mapping[str, ModelSpec],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rollout = rollout
        self.clock = clock
        self.models = models
        self.stopped: Stopped | None = None  # set once, by stop(); a reload starts afresh
        self._served: ModelSpec | None = None
        if rollout is not None:
            spec = models[rollout.model]
            v: ModelVersion = spec.versions[rollout.to]
            self._served = replace(
                spec, model_id=v.model_id, version=v.name, price=v.price,
                deployments=tuple(replace(d, model_id=v.model_id) for d in spec.deployments))

    def spec_for(self, spec: ModelSpec, who: str) -> ModelSpec:
        """`spec` as called for this caller: the rolled-out version when the caller's bucket
        is below the current share, else the pinned one."""
        ro = self.rollout
        if ro is None or spec.name != ro.model or self._served is None:
            return spec
        return self._served if bucket(spec.name, who) < self.share() else spec

    def share(self) -> float:
        """The rolled-out version's share now (0 without a rollout or after a rollback)."""
        ro, stopped = self.rollout, self.stopped
        if ro is None:
            return 0.0
        return stopped.share if stopped is not None else ro.share_at(self.clock())

    def version_for(self, req: CompletionRequest, decision: Decision) -> str:
        """The model_id `req`'s caller is sent for the decision's model (as `_call_chain`
        picks it); "" for a model outside the registry."""
        spec = self.models.get(decision.model)
        if spec is None:
            return ""
        r = req.route
        return self.spec_for(spec, r.user or r.tenant or decision.request_id).model_id

    def shares(self, spec: ModelSpec) -> dict[str, float]:
        """Each version's share of the model's traffic now (the pinned one: the rest)."""
        ro = self.rollout
        if ro is None or spec.name != ro.model:
            return {spec.version: 1.0}
        share = self.share()
        return {spec.version: 1.0 - share, ro.to: share}

    def stop(self, model: str, version: str, reason: str, *, roll_back: bool) -> Stopped | None:
        """A regression of `model`@`version`: roll the rollout back (share 0) or hold its
        share where it is. None when no running rollout is of that version."""
        ro = self.rollout
        if ro is None or ro.model != model or ro.to != version or self.stopped is not None:
            return None
        share = 0.0 if roll_back else ro.share_at(self.clock())
        self.stopped = Stopped("rolled_back" if roll_back else "held", share, reason,
                               time.time())
        return self.stopped

    def state(self) -> tuple[str, str]:
        """(state, reason) of the rollout: "" without one, else rolling / complete /
        held / rolled_back."""
        if self.rollout is None:
            return "", ""
        if self.stopped is not None:
            return self.stopped.state, self.stopped.reason
        return ("complete" if self.share() >= 1.0 else "rolling"), ""

    def version_state(self, spec: ModelSpec) -> tuple[str, str, str] | None:
        """(rolled-out version, state, reason) when `spec` is the model being rolled out."""
        ro = self.rollout
        if ro is None or spec.name != ro.model:
            return None
        return (ro.to, *self.state())

    def describe(self) -> str:
        """"gpt-4o -> 2024-11-20 at 5.0% (rolling)", "" without a rollout."""
        ro = self.rollout
        if ro is None:
            return ""
        return f"{ro.model} -> {ro.to} at {self.share() * 100:.1f}% ({self.state()[0]})"
