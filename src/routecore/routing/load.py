"""Load-aware model choice: what the fleet observes, as the policy reads it.

Config (validated by `parse_load`; all optional)::

    load: {enabled: true, half_life_s: 60, refresh_s: 0.5, prior_weight: 2, max_in_flight: 0}

The completion layer records every model's calls (state/observed.py: decayed
latency histograms, calls in flight, RPM/TPM headroom, in memory or shared through
Redis) and hands the router its latest `LoadSnapshot`. `LoadView` turns one
snapshot into what the policy needs, once per snapshot (not per request):

- latency: each model's p50 and p95 become the prior's (the registry's) and the
  observed percentiles mixed by weight, the prior counting as `prior_weight`
  calls: (calls * observed + prior_weight * prior) / (calls + prior_weight). As
  observations decay (`half_life_s`) the prior takes over again. The estimate
  is on p50; `max_latency_ms` is checked on the same estimate made with p95;
- eligibility: a model with no request left in its RPM bucket, fewer tokens left
  in its TPM bucket than the request needs, or `max_in_flight` calls in flight
  (0: no cap), is at its limit and not chosen (`rejected_reason` says which).

Open breakers keep their own path (the router's health source).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from routecore._fast._constants import FAIL_AT_LIMIT
from routecore.config import Config, _Reader
from routecore.domain import LoadSnapshot, ModelLoad
from routecore.errors import ConfigError
from routecore.routing.registry import Registry
from routecore.state.backend import Backend, MemoryBackend
from routecore.state.limits import RateLimiter
from routecore.state.observed import MemoryObserved, ObservedConfig, open_observed

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LoadConfig:
    enabled: bool = True
    half_life_s: float = 60.0
    refresh_s: float = 0.5
    prior_weight: float = 2.0
    max_in_flight: int = 0


def parse_load(raw: Any, problems: list[str] | None = None) -> LoadConfig:
    """Validate the `load` section; with `problems` they are appended, else raised."""
    r, p, d = _Reader(), "load", LoadConfig()
    n = r.mapping(raw, p, required=False)
    r.unknown(n, p, {"enabled", "half_life_s", "refresh_s", "prior_weight", "max_in_flight"})
    half = r.number(n, "half_life_s", p, lo=0.01, hi=86_400.0, default=d.half_life_s)
    refresh = r.number(n, "refresh_s", p, lo=0.01, hi=60.0, default=d.refresh_s)
    prior = r.number(n, "prior_weight", p, lo=0.0, hi=1e6, default=d.prior_weight)
    cap = r.number(n, "max_in_flight", p, lo=0, hi=10**9, integer=True, default=0)
    cfg = LoadConfig(enabled=bool(r.get(n, "enabled", p, bool, True)),
                     half_life_s=d.half_life_s if half is None else half,
                     refresh_s=d.refresh_s if refresh is None else refresh,
                     prior_weight=d.prior_weight if prior is None else prior,
                     max_in_flight=cap or 0)
    if problems is None and r.problems:
        raise ConfigError(r.problems)
    if problems is not None:
        problems.extend(r.problems)
    return cfg


def _ms(x: float) -> str:
    return f"{x:,.0f} ms"


class LoadView:
    """One snapshot as the policy reads it: mixed latency columns and models at a limit.
    Built once per snapshot; per request only the TPM comparisons run."""

    __slots__ = ("_combos", "_names", "_notes", "_prior50", "_prior95", "_tpm", "at_limit",
                 "codes", "models", "observed", "p50", "p95", "version")

    def __init__(self, snapshot: LoadSnapshot, registry: Registry, config: LoadConfig) -> None:
        self.version = snapshot.version
        self.models: Mapping[str, ModelLoad] = snapshot.models
        self._names = registry.names
        prior50, prior95 = registry.p50_ms.tolist(), registry.p95_ms.tolist()
        self._prior50, self._prior95 = prior50, prior95
        p50, p95 = list(prior50), list(prior95)
        k = config.prior_weight
        self.observed: dict[int, ModelLoad] = {}  # model row -> its observations (calls > 0)
        self.at_limit: dict[int, str] = {}  # model row -> why, whatever the request
        self._tpm: list[tuple[int, float, str]] = []  # (row, tokens left, why) when not full
        self._notes: dict[int, str] = {}
        self._combos: dict[tuple[int, ...], tuple[dict[int, str], npt.NDArray[np.int8]]] = {}
        index = registry.index
        for name, ml in snapshot.models.items():
            i = index.get(name)
            if i is None:
                continue
            if ml.calls > 0 and not math.isnan(ml.p50_ms):
                w = ml.calls
                p50[i] = (w * ml.p50_ms + k * p50[i]) / (w + k)
                p95[i] = max(p50[i], (w * ml.p95_ms + k * p95[i]) / (w + k))
                self.observed[i] = ml
            if ml.rpm_left is not None and ml.rpm_left < 1.0:
                self.at_limit[i] = (f"at its limit: rate limit, {max(0.0, ml.rpm_left):.1f} of "
                                    f"{ml.rpm} requests left this minute")
            elif config.max_in_flight and ml.in_flight >= config.max_in_flight:
                self.at_limit[i] = (f"at its limit: {ml.in_flight} calls in flight "
                                    f"(load.max_in_flight {config.max_in_flight})")
            elif ml.tpm_left is not None and ml.tpm_left < ml.tpm:
                self._tpm.append((i, ml.tpm_left, (
                    f"at its limit: rate limit, {max(0.0, ml.tpm_left):,.0f} of {ml.tpm:,} "
                    f"tokens left this minute, fewer than the request needs")))
        self.p50: F64 = np.array(p50)
        self.p95: F64 = np.array(p95)
        # FAIL_AT_LIMIT (10) per model for the request-independent limits, or None.
        self.codes: npt.NDArray[np.int8] | None = None
        if self.at_limit:
            self.codes = np.zeros(len(registry), dtype=np.int8)
            self.codes[list(self.at_limit)] = FAIL_AT_LIMIT

    def limited(self, tokens: int) -> tuple[dict[int, str], npt.NDArray[np.int8] | None]:
        """Models at a limit for a request of `tokens` (input + output room), and their
        FAIL_AT_LIMIT codes: the request-independent ones, plus those whose TPM bucket
        holds fewer tokens than the request needs (or is not full, when it needs more
        than the bucket holds at all)."""
        if not self._tpm:
            return self.at_limit, self.codes
        hit = tuple([i for i, left, _ in self._tpm if left < tokens])
        if not hit:
            return self.at_limit, self.codes
        got = self._combos.get(hit)  # requests mostly hit the same rows: built once
        if got is None:
            out = dict(self.at_limit)
            codes = (np.zeros(len(self._names), dtype=np.int8) if self.codes is None
                     else self.codes.copy())
            for i, _, why in self._tpm:
                if i in hit:
                    out[i] = why
                    codes[i] = FAIL_AT_LIMIT
            got = self._combos[hit] = (out, codes)
        return got

    def note(self, i: int) -> str:
        """Observed against prior for model row `i` ('' when it has no observations);
        formatted once per snapshot."""
        note = self._notes.get(i)
        if note is None:
            ml = self.observed.get(i)
            note = "" if ml is None else (
                f"{self._names[i]} p95 observed {_ms(ml.p95_ms)} (prior "
                f"{_ms(self._prior95[i])}), p50 observed {_ms(ml.p50_ms)} (prior "
                f"{_ms(self._prior50[i])}) over {ml.calls:.1f} recent calls")
            self._notes[i] = note
        return note


def open_load(config: Config, state: Backend | None, buckets: object,
              rate_limits: bool = True) -> MemoryObserved | None:
    """The observed-load recorder for the completion layer (None with `load.enabled`
    false): on `state` (a fresh memory backend when None), reading the RPM/TPM buckets
    of the models with limits (`buckets`: the memory backend's rate limiter)."""
    cfg = parse_load(config.extra.get("load"))
    if not cfg.enabled:
        return None
    limits = {name: (s.rate_limits.rpm, s.rate_limits.tpm) for name, s in config.models.items()
              if rate_limits and (s.rate_limits.rpm > 0 or s.rate_limits.tpm > 0)}
    return open_observed(state if state is not None else MemoryBackend(),
                         ObservedConfig(cfg.half_life_s, cfg.refresh_s), list(config.models),
                         limits, buckets if isinstance(buckets, RateLimiter) else None)
