"""Quality regression detection: a one-sided CUSUM per (model, version, router
version, category, signal kind), against a baseline.

Signals are values in [0, 1], higher is better:
- `feedback`: Feedback RPC scores, attributed to the version that served the
  request they name (this process remembers the last `remember` requests; the
  first score of a request counts, repeats do not);
- `judge`: cascade / ensemble judge grades of a model's answer;
- `shadow`: the judged score of the live (routed) answer in each shadow
  evaluation (server/alerting.py subscribes to the shadow runner's outcomes;
  anything else may call `Detector.observe(kind="shadow", ...)`);
- `error`: each upstream attempt in Complete, 1 answered, 0 failed (an open
  breaker of the version's deployment counts as a failure; failures the caller
  or capacity caused, such as a context overflow or a rate limit, do not count).
  Error streams are per model version only (router version and category "all"):
  whether an upstream call fails does not depend on them, and a request that
  failed everywhere has no routing decision in its record to take them from.

The test. A stream's baseline (mean m0, standard deviation s0) is its first
`baseline` signals, or, for a version that is not the pinned one (a rollout),
the pinned version's baseline for the same router version, category and kind
once that one is complete: a new version is held to the quality of the one it
replaces from its first signal. Each later signal x adds its standardised drop
z = clip((m0 - x) / max(s0, sigma_floor), -z_clip, z_clip) to
S = max(0, S + z - drift - 2/sqrt(n0)), and the stream alarms when
S > threshold after at least `min_samples` tested signals. While S is 0 (in
control before the signal, so whatever its value: no selection bias) a signal
also refines its own stream's baseline, up to 20 x `baseline` signals, then as
an exponentially weighted mean over about that many.

Why false alarms stay rare (the defaults: baseline 200, drift k=0.5,
threshold h=16, z_clip 4, min_samples 10). For in-control signals z has mean 0
and variance at most 1, so S drifts down by at least k per signal and crossing
h is a large deviation: Siegmund's approximation for normal data gives an
in-control average run length ARL0 = (exp(2kb) - 2kb - 1) / (2k^2) with
b = h + 1.166, about 5.7e7 signals per stream (h=12: 1e6; h=5: 930). Bounded,
skewed signals (binary thumbs up/down, error flags) have heavier upper tails
than the normal, which is why h is 16 and not 12: measured over 2,000,000
stable signals (bench/regression.py: five signal shapes, 20 seeds) the
defaults raised no false alarm, where h=12 raised 7, all on binary streams.
Two more guards: a short baseline's own error (its mean is off by about
s0/sqrt(n0)) would shift every z, so the allowance grows by two standard errors
(2/sqrt(n0), 0.14 at n0=200, shrinking as the baseline is refined); and z is
clipped at 4, so one outlier moves S by at most 3.5 and a lone bad answer never
alarms. The price is the detection delay: ARL1 = (exp(-2Db) + 2Db - 1) / (2D^2),
D = d - k for a drop of d standard deviations, about 32 signals at d=1 and 11 at
d=2 (measured medians 35 and 11), never fewer than `min_samples`; drops below
about k=0.5 standard deviations are not what this test is for (lower `drift`
and raise `threshold` to trade speed on large drops for reach on small ones).

State lives in this process's memory (per worker with --workers, lost on
restart); a fleet sharing Redis still has one detector per process, each on its
own traffic. Memory is bounded: at most `max_streams` streams (least recently
updated evicted), each with a fixed-size recent window, and `remember`
requests for feedback attribution. Labels are bounded by the config: signals
for models or versions it does not name are dropped (counted in `ignored`).
Feeding runs on the audit writer's thread (server/records.py builds the
records), never on a request's path.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from routecore.config import Config, _Reader
from routecore.errors import ConfigError, InvalidRequest
from routecore.observe.record import AuditRecord

KINDS = ("feedback", "judge", "shadow", "error")
# Attempt outcomes that say nothing about the model version's quality.
NOT_MODEL_ERRORS = frozenset({"context_overflow", "rate_limit",
                              "bad_request", "budget", "deadline"})
MAX_LABEL = 128
ALL = "all"  # the router version and category of error streams
BASELINE_GROWTH = 20  # in-control signals keep refining a baseline up to this x `baseline`
_ALERTS = {"enabled", "webhook_url", "webhook_timeout_s", "webhook_retries", "rollback",
           "baseline", "min_samples", "drift", "threshold", "sigma_floor", "z_clip", "window",
           "max_streams", "remember"}

Key = tuple[str, str, str, str, str]  # model, version, router_version, category, kind


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The `alerts` config section (docs/config_meanings.yaml says what each key means)."""

    enabled: bool = True
    webhook_url: str = ""
    webhook_timeout_s: float = 5.0
    webhook_retries: int = 4
    rollback: bool = True
    baseline: int = 200
    min_samples: int = 10
    drift: float = 0.5
    threshold: float = 16.0
    sigma_floor: float = 0.1
    z_clip: float = 4.0
    window: int = 50
    max_streams: int = 2000
    remember: int = 50_000


def parse_alerts(config: Config) -> AlertSettings:
    """Validate `alerts`; raises ConfigError naming each bad field."""
    r = _Reader()
    n = r.mapping(config.extra.get("alerts"), "alerts", required=False)
    r.unknown(n, "alerts", _ALERTS)
    p, d = "alerts", AlertSettings()
    url = r.get(n, "webhook_url", p, str, "") or ""
    if url and not url.startswith(("http://", "https://")):
        r.fail("alerts.webhook_url", "must be an http:// or https:// URL")
    if len(url) > 2048:
        r.fail("alerts.webhook_url", "longer than 2048 characters")
    s = AlertSettings(
        enabled=r.get(n, "enabled", p, bool, d.enabled),
        webhook_url=url,
        webhook_timeout_s=r.number(n, "webhook_timeout_s", p, lo=0.01, hi=120.0,
                                   default=d.webhook_timeout_s),
        webhook_retries=r.number(n, "webhook_retries", p, lo=0, hi=20, integer=True,
                                 default=d.webhook_retries),
        rollback=r.get(n, "rollback", p, bool, d.rollback),
        baseline=r.number(n, "baseline", p, lo=10, hi=100_000, integer=True, default=d.baseline),
        min_samples=r.number(n, "min_samples", p, lo=1, hi=100_000, integer=True,
                             default=d.min_samples),
        drift=r.number(n, "drift", p, lo=0.01, hi=10.0, default=d.drift),
        threshold=r.number(n, "threshold", p, lo=1.0, hi=1000.0, default=d.threshold),
        sigma_floor=r.number(n, "sigma_floor", p, lo=0.001, hi=1.0, default=d.sigma_floor),
        z_clip=r.number(n, "z_clip", p, lo=1.0, hi=100.0, default=d.z_clip),
        window=r.number(n, "window", p, lo=1, hi=10_000, integer=True, default=d.window),
        max_streams=r.number(n, "max_streams", p, lo=1, hi=1_000_000, integer=True,
                             default=d.max_streams),
        remember=r.number(n, "remember", p, lo=0, hi=10_000_000, integer=True,
                          default=d.remember),
    )
    if r.problems:
        raise ConfigError(r.problems)
    if s.z_clip <= s.drift:
        raise ConfigError([f"alerts.z_clip: must be > alerts.drift ({s.drift:g}), or no "
                           "signal can ever raise the statistic"])
    return s


@dataclass(frozen=True, slots=True)
class Alarm:
    """One detected drop: which stream, the evidence, and when (unix seconds)."""

    model: str
    version: str
    router_version: str
    category: str
    kind: str
    baseline_mean: float
    baseline_sd: float
    baseline_n: int
    reference: str  # the version whose baseline was used
    recent_mean: float
    recent_n: int
    statistic: float
    tested: int  # signals tested against the baseline, the alarming one included
    at: float = field(default_factory=time.time)

    def message(self) -> str:
        return (f"{self.kind} of {self.model}@{self.version} ({self.category}) dropped: "
                f"mean {self.recent_mean:.3f} over the last {self.recent_n} signals against "
                f"a baseline of {self.baseline_mean:.3f} ({self.reference}, n={self.baseline_n}); "
                f"CUSUM {self.statistic:.1f} after {self.tested} tested signals")


def _learn(st: _Stream, value: float, cap: int) -> None:
    """Fold `value` into the baseline: Welford up to `cap` signals, then an exponentially
    weighted mean and variance over about the last `cap` (the baseline follows slow change
    of an in-control stream)."""
    if st.n < cap:
        st.n += 1
        delta = value - st.mean
        st.mean += delta / st.n
        st.m2 += delta * (value - st.mean)
        return
    a = 1.0 / cap
    delta = value - st.mean
    st.mean += a * delta
    st.m2 = (1.0 - a) * (st.m2 + a * delta * delta * (st.n - 1))


def _owner(rec: AuditRecord) -> str:
    """Whose request ids these are, as Outcomes scopes them: the key's tenant with auth on
    (a record with a key id), else everyone's."""
    return rec.tenant if rec.key_id else ""


class _Stream:
    __slots__ = ("m2", "mean", "n", "recent", "s", "tested")

    def __init__(self, window: int) -> None:
        self.n = 0  # baseline signals so far (frozen at settings.baseline)
        self.mean = 0.0
        self.m2 = 0.0
        self.s = 0.0  # the CUSUM statistic
        self.tested = 0
        self.recent: deque[float] = deque(maxlen=window)


AlarmHook = Callable[[Alarm], None]


class Detector:
    """Streams of quality signals and their CUSUM tests. Thread-safe: the audit writer's
    thread feeds records while the event loop may call `observe`."""

    def __init__(self, settings: AlertSettings, config: Config,
                 on_alarm: AlarmHook | None = None) -> None:
        self.settings = settings
        self.on_alarm = on_alarm
        self._lock = threading.Lock()
        self._streams: OrderedDict[Key, _Stream] = OrderedDict()
        # request id -> (owner, router version, category, {model: version served})
        self._recent: OrderedDict[str, tuple[str, str, str, dict[str, str]]] = OrderedDict()
        self.alarms: dict[Key, Alarm] = {}
        self.ignored = 0  # signals for models or versions outside the config
        self.signals = 0
        self.use_config(config)

    def use_config(self, config: Config) -> None:
        """Which versions exist and which is pinned (a reload may change them)."""
        pinned: dict[str, str] = {}
        versions: dict[str, frozenset[str]] = {}
        by_id: dict[tuple[str, str], str] = {}
        for spec in config.models.values():
            pinned[spec.name] = spec.version
            versions[spec.name] = frozenset((spec.version, *spec.versions))
            for v in spec.versions.values():
                by_id.setdefault((spec.name, v.model_id), v.name)
            for dep in spec.deployments:
                by_id[(spec.name, dep.model_id)] = spec.version
            by_id[(spec.name, spec.model_id)] = spec.version
        self._pinned, self._versions, self._by_id = pinned, versions, by_id

    # -- input ----------------------------------------------------------------------

    def observe(self, *, model: str, version: str, router_version: str, category: str,
                kind: str, value: float) -> bool:
        """One quality signal; False when it was dropped (a model or version the config does
        not name). Raises InvalidRequest on a bad kind or a value outside [0, 1]."""
        if kind not in KINDS:
            raise InvalidRequest(f"kind: must be one of {', '.join(KINDS)}, got {kind[:40]!r}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                not 0.0 <= float(value) <= 1.0:  # NaN fails both comparisons
            raise InvalidRequest(f"value: must be a number in [0, 1], got {value!r:.40}")
        with self._lock:
            alarm = self._add(model, version, router_version, category, kind, float(value))
        if alarm is not None:
            self._fire(alarm)
        return alarm is not None or self._known(model, version)

    def feed(self, records: Iterable[AuditRecord]) -> None:
        """Signals from a batch of audit records (the recorder's writer thread)."""
        alarms: list[Alarm] = []
        with self._lock:
            for rec in records:
                if rec.status != "OK" and rec.rpc != "Complete" and rec.rpc != "CompleteStream":
                    continue
                if rec.rpc == "Feedback":
                    self._feedback(rec, alarms)
                elif rec.rpc in ("Complete", "CompleteStream"):
                    self._completion(rec, alarms)
                elif rec.rpc == "Route" and rec.model:
                    self._remember(rec, {rec.model: rec.model_version})
        for alarm in alarms:
            self._fire(alarm)

    def served_version(self, request_id: str, model: str) -> str | None:
        """The version of `model` that answered a remembered request (None: not known)."""
        seen = self._recent.get(request_id)
        return seen[3].get(model) if seen is not None else None

    def reset(self) -> list[Alarm]:
        """Forget every alarmed stream (its baseline is learned again); returns the alarms
        cleared. A config reload calls this: it is how an alarm is acknowledged."""
        with self._lock:
            cleared = list(self.alarms.values())
            for key in self.alarms:
                self._streams.pop(key, None)
            self.alarms = {}
        return cleared

    def streams(self) -> int:
        return len(self._streams)

    # -- records -> signals ---------------------------------------------------------

    def _version_of(self, model: str, deployment: str) -> str | None:
        return self._by_id.get((model, deployment.partition("/")[2]))

    def _completion(self, rec: AuditRecord, alarms: list[Alarm]) -> None:
        served: dict[str, str] = {}
        rv, cat = rec.router_version, rec.category
        for model, deployment, _prov, outcome, _ms, _retry, _err in rec.attempts:
            if not deployment or outcome in NOT_MODEL_ERRORS:
                continue
            version = self._version_of(model, deployment)
            if version is None:
                self.ignored += 1
                continue
            if outcome == "ok":
                served[model] = version
            self._signal(model, version, ALL, ALL, "error", 1.0 if outcome == "ok" else 0.0,
                         alarms)
        for item in rec.features.get("judge", ()):
            model, grade = item[0], item[1]
            if model in served:
                self._signal(model, served[model], rv, cat, "judge", float(grade), alarms)
        if rec.status == "OK" and served:
            self._remember(rec, served)

    def _feedback(self, rec: AuditRecord, alarms: list[Alarm]) -> None:
        score = rec.feedback.get("score")
        if not isinstance(score, (int, float)):
            return
        rid = str(rec.feedback.get("ref_request_id", ""))
        seen = self._recent.get(rid)
        if seen is None or seen[0] != _owner(rec):
            # A request this process did not serve, has forgotten, was scored, or another
            # tenant's (its score must neither count nor use up the owner's one signal).
            return
        # Popped: one feedback signal per served request, however often a caller repeats it.
        del self._recent[rid]
        _, rv, cat, served = seen
        model = rec.model or next(iter(served))
        version = served.get(model)
        if version is not None:
            self._signal(model, version, rv, cat, "feedback", float(score), alarms)

    def _remember(self, rec: AuditRecord, served: dict[str, str]) -> None:
        rid = rec.request_id
        if not rid or self.settings.remember <= 0:
            return
        recent = self._recent
        recent[rid] = (_owner(rec), rec.router_version, rec.category, served)
        if len(recent) > self.settings.remember:
            recent.popitem(last=False)

    # -- the test ----------------------------------------------------------------------

    def _known(self, model: str, version: str) -> bool:
        return version in self._versions.get(model, ())

    def _signal(self, model: str, version: str, rv: str, cat: str, kind: str, value: float,
                alarms: list[Alarm]) -> None:
        if 0.0 <= value <= 1.0:
            alarm = self._add(model, version, rv, cat, kind, value)
            if alarm is not None:
                alarms.append(alarm)

    def _stream(self, key: Key) -> _Stream:
        streams = self._streams
        st = streams.get(key)
        if st is None:
            if len(streams) >= self.settings.max_streams:
                streams.popitem(last=False)  # the least recently updated
            st = streams[key] = _Stream(self.settings.window)
        else:
            streams.move_to_end(key)
        return st

    def _add(self, model: str, version: str, rv: str, cat: str, kind: str,
             value: float) -> Alarm | None:
        if not self._known(model, version):
            self.ignored += 1
            return None
        self.signals += 1
        key = (model, version, rv[:MAX_LABEL], cat[:MAX_LABEL], kind)
        if key in self.alarms:
            return None  # latched until a reload acknowledges it
        cfg = self.settings
        st = self._stream(key)
        st.recent.append(value)
        ref, ref_version = st, version
        pinned = self._pinned.get(model, version)
        if version != pinned:
            other = self._streams.get((model, pinned, key[2], key[3], kind))
            if other is not None and other.n >= cfg.baseline:
                ref, ref_version = other, pinned
        if ref.n < cfg.baseline:  # still learning its own baseline
            _learn(st, value, cfg.baseline * BASELINE_GROWTH)
            return None
        sd = math.sqrt(ref.m2 / (ref.n - 1)) if ref.n > 1 else 0.0
        z = (ref.mean - value) / max(sd, cfg.sigma_floor)
        z = max(-cfg.z_clip, min(cfg.z_clip, z))
        if ref is st and st.s == 0.0:
            # In control before this signal (whatever its value: no selection bias), so it
            # refines the baseline: the estimate's error, not the data, causes most false
            # alarms of a CUSUM on a short baseline.
            _learn(st, value, cfg.baseline * BASELINE_GROWTH)
        # The allowance grows by two standard errors of the baseline mean: a baseline that
        # happens to sit high cannot, alone, make in-control signals look like a drop.
        st.s = max(0.0, st.s + z - cfg.drift - 2.0 / math.sqrt(ref.n))
        st.tested += 1
        if st.s <= cfg.threshold or st.tested < cfg.min_samples:
            return None
        alarm = Alarm(model, version, key[2], key[3], kind, ref.mean, sd, ref.n,
                      f"{'pinned ' if ref is not st else ''}{ref_version}",
                      sum(st.recent) / len(st.recent), len(st.recent), st.s, st.tested)
        self.alarms[key] = alarm
        return alarm

    def _fire(self, alarm: Alarm) -> None:
        if self.on_alarm is not None:
            self.on_alarm(alarm)

    def snapshot(self) -> Mapping[Key, Any]:
        """Each stream's state (tests, debugging): baseline n and mean, statistic, tested."""
        with self._lock:
            return {k: (s.n, s.mean, s.s, s.tested) for k, s in self._streams.items()}
