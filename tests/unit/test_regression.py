"""The quality regression detector on its own: a drop fires within a bounded number of
signals, stable streams never fire, a rollout is held to the pinned version's baseline,
labels and memory stay bounded, hostile input is refused by name."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from typing import Any

import pytest

from routecore.calling.rollout import Rollouts, parse_rollout
from routecore.calling.types import Attempt
from routecore.config import Config, load_config, parse_config
from routecore.errors import ConfigError, InvalidRequest
from routecore.observe.alerts import ALERT_RPC, AlertMetrics, document, record
from routecore.observe.record import AuditRecord, to_row
from routecore.observe.regression import Alarm, AlertSettings, Detector, parse_alerts

Gen = Callable[[random.Random], float]
OLD, NEW = "2024-08-06", "2024-11-20"


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(None)


def normal(mu: float, sd: float) -> Gen:
    return lambda r: min(1.0, max(0.0, r.gauss(mu, sd)))


def binary(p: float) -> Gen:
    return lambda r: 1.0 if r.random() < p else 0.0


def drive(d: Detector, gen: Gen, n: int, rng: random.Random, fired: list[Alarm],
          version: str = OLD, kind: str = "feedback", category: str = "code") -> int | None:
    """Signals until the first alarm (its 1-based index) or None."""
    for i in range(n):
        d.observe(model="gpt-4o", version=version, router_version="v1", category=category,
                  kind=kind, value=gen(rng))
        if fired:
            return i + 1
    return None


# The bounds the tests hold the defaults to (observe/regression.py derives them:
# ARL1 about 32 signals at a 1-sd drop, 11 at 2 sd; measured maxima in bench/regression.py).
BOUND_1SD, BOUND_2SD, BOUND_TOTAL = 80, 25, 20


@pytest.mark.parametrize("seed", range(8))
def test_a_drop_fires_within_a_bounded_number_of_signals(config: Config, seed: int) -> None:
    """Scores 0.8 +- 0.15 that drop by 1 sd alarm within 80 signals, by 2 sd within 25, and a
    model that starts refusing everything (scores 0) within 20; never before the drop."""
    for after, bound in ((normal(0.65, 0.15), BOUND_1SD), (normal(0.5, 0.15), BOUND_2SD),
                         (lambda r: 0.0, BOUND_TOTAL)):
        fired: list[Alarm] = []
        d = Detector(AlertSettings(), config, on_alarm=fired.append)
        rng = random.Random(seed)
        assert drive(d, normal(0.8, 0.15), 400, rng, fired) is None
        delay = drive(d, after, 5000, rng, fired)
        assert delay is not None and delay <= bound, (seed, bound, delay)
        (alarm,) = fired
        assert (alarm.model, alarm.version, alarm.category, alarm.kind) == \
            ("gpt-4o", OLD, "code", "feedback")
        assert alarm.recent_mean < alarm.baseline_mean and alarm.statistic > 16
        assert alarm.reference == OLD and "dropped" in alarm.message()


@pytest.mark.parametrize("seed", range(5))
def test_stable_streams_never_fire(config: Config, seed: int) -> None:
    """Five stable signal shapes (scores, binary thumbs up, error flags), 8,000 signals each,
    in five kinds and categories of one detector: no alarm at all."""
    fired: list[Alarm] = []
    d = Detector(AlertSettings(), config, on_alarm=fired.append)
    rng = random.Random(1000 + seed)
    shapes = [(normal(0.8, 0.15), "feedback", "code"), (normal(0.5, 0.3), "judge", "math"),
              (binary(0.8), "feedback", "chat"), (binary(0.5), "shadow", "qa"),
              (binary(0.98), "error", "code")]
    for gen, kind, category in shapes:
        assert drive(d, gen, 8000, rng, fired, kind=kind, category=category) is None
    assert d.signals == 40_000 and not d.alarms


def test_a_rolled_out_version_is_held_to_the_pinned_baseline(config: Config) -> None:
    """A new version that is worse from its first signal alarms against the pinned version's
    baseline, where its own baseline would have learned the worse level and stayed quiet."""
    fired: list[Alarm] = []
    d = Detector(AlertSettings(), config, on_alarm=fired.append)
    rng = random.Random(7)
    assert drive(d, normal(0.8, 0.15), 300, rng, fired, version=OLD) is None
    delay = drive(d, normal(0.5, 0.15), 500, rng, fired, version=NEW)
    assert delay is not None and delay <= BOUND_2SD
    assert fired[0].version == NEW and fired[0].reference == f"pinned {OLD}"
    # Without the pinned baseline, the same stream only learns its own level.
    quiet: list[Alarm] = []
    d2 = Detector(AlertSettings(), config, on_alarm=quiet.append)
    assert drive(d2, normal(0.5, 0.15), 2000, random.Random(7), quiet, version=NEW) is None


def test_an_alarm_latches_until_reset(config: Config) -> None:
    """After an alarm the stream stays quiet (one alert per regression); reset() clears it and
    the stream learns a new baseline."""
    fired: list[Alarm] = []
    d = Detector(AlertSettings(baseline=20), config, on_alarm=fired.append)
    rng = random.Random(3)
    drive(d, normal(0.9, 0.05), 20, rng, fired)
    drive(d, lambda r: 0.0, 100, rng, fired)
    drive(d, lambda r: 0.0, 100, rng, fired)
    assert len(fired) == 1 and len(d.alarms) == 1
    assert [a.kind for a in d.reset()] == ["feedback"] and not d.alarms
    fired.clear()
    assert drive(d, lambda r: 0.0, 500, rng, fired) is None  # the new level is its baseline


def test_hostile_signals_are_refused_by_name(config: Config) -> None:
    """A bad kind or a value outside [0, 1] (NaN, inf, bool, text) is InvalidRequest naming the
    field; models and versions outside the config are dropped and counted; a huge category
    label is cut, so labels stay bounded."""
    d = Detector(AlertSettings(), config)
    ok = {"model": "gpt-4o", "version": OLD, "router_version": "v", "category": "code"}
    for kind, value, field in (("bogus", 0.5, "kind"), ("x" * 10_000, 0.5, "kind"),
                               ("judge", math.nan, "value"), ("judge", math.inf, "value"),
                               ("judge", -0.01, "value"), ("judge", 1.5, "value"),
                               ("judge", True, "value"), ("judge", "0.5", "value")):
        with pytest.raises(InvalidRequest, match=f"^{field}: "):
            d.observe(**ok, kind=kind, value=value)  # type: ignore[arg-type]
    assert d.observe(**{**ok, "model": "no-such-model"}, kind="judge", value=0.5) is False
    assert d.observe(**{**ok, "version": "1999-01-01"}, kind="judge", value=0.5) is False
    assert d.ignored == 2 and d.streams() == 0
    assert d.observe(**{**ok, "category": "c" * 100_000}, kind="judge", value=0.5) is True
    (key,) = d.snapshot()
    assert len(key[3]) == 128


def test_memory_is_bounded(config: Config) -> None:
    """Streams beyond max_streams evict the least recently updated; remembered requests for
    feedback stop at `remember`."""
    d = Detector(AlertSettings(max_streams=50, remember=100), config)
    for i in range(1000):
        d.observe(model="gpt-4o", version=OLD, router_version=f"rv{i}", category="code",
                  kind="judge", value=0.5)
    assert d.streams() == 50
    d.feed([_complete(f"r{i}", OLD) for i in range(1000)])
    assert len(d._recent) == 100


def _complete(rid: str, version_id: str, outcome: str = "ok", *,
              judge: list[list[Any]] | None = None, status: str = "OK") -> AuditRecord:
    rec = AuditRecord(ts=0.0, request_id=rid, rpc="Complete", status=status, model="gpt-4o",
                      model_version=OLD, category="code", router_version="v1",
                      attempts=[("gpt-4o", f"openai/gpt-4o-{version_id}", "openai", outcome, 1.0,
                                 0, "" if outcome == "ok" else "boom")])
    if judge:
        rec.features["judge"] = judge
    return rec


def test_records_become_signals_of_the_version_that_served(config: Config) -> None:
    """A Complete's attempts are error signals of the version whose model_id was called (a
    rollout's), its judge grades judge signals, and a later Feedback on it is a feedback
    signal of that version (once: a repeated Feedback is ignored); attempts the caller's
    request caused to fail are not counted."""
    d = Detector(AlertSettings(), config)
    d.feed([_complete("a", NEW, judge=[["gpt-4o", 0.9]]),
            _complete("b", OLD, "server", status="UNAVAILABLE"),
            _complete("c", OLD, "context_overflow", status="INVALID_ARGUMENT"),
            AuditRecord(ts=0.0, request_id="f", rpc="Feedback", status="OK", model="gpt-4o",
                        feedback={"ref_request_id": "a", "score": 0.25}),
            AuditRecord(ts=0.0, request_id="f2", rpc="Feedback", status="OK", model="gpt-4o",
                        feedback={"ref_request_id": "a", "score": 0.0}),  # a repeat: ignored
            AuditRecord(ts=0.0, request_id="g", rpc="Feedback", status="OK", model="gpt-4o",
                        feedback={"ref_request_id": "never-served", "score": 0.25})])
    snap = d.snapshot()
    assert set(snap) == {("gpt-4o", NEW, "all", "all", "error"),
                         ("gpt-4o", NEW, "v1", "code", "judge"),
                         ("gpt-4o", NEW, "v1", "code", "feedback"),
                         ("gpt-4o", OLD, "all", "all", "error")}
    assert snap[("gpt-4o", NEW, "v1", "code", "feedback")][:2] == (1, 0.25)
    assert snap[("gpt-4o", OLD, "all", "all", "error")][1] == 0.0


def test_feedback_on_another_tenants_request_is_not_a_signal(config: Config) -> None:
    """With auth on, a Feedback naming another tenant's request id neither counts as a
    signal of the version that served it nor uses up its owner's one feedback signal."""
    d = Detector(AlertSettings(), config)
    served = _complete("a", NEW)
    served.tenant, served.key_id = "acme", "acme-alice"

    def feedback(tenant: str, key: str, score: float) -> AuditRecord:
        return AuditRecord(ts=0.0, request_id=f"f-{tenant}", rpc="Feedback", status="OK",
                           model="gpt-4o", tenant=tenant, key_id=key,
                           feedback={"ref_request_id": "a", "score": score})

    d.feed([served, feedback("evil", "evil-key", 0.0)])
    assert ("gpt-4o", NEW, "v1", "code", "feedback") not in d.snapshot()
    d.feed([feedback("acme", "acme-bob", 0.75)])
    assert d.snapshot()[("gpt-4o", NEW, "v1", "code", "feedback")][:2] == (1, 0.75)


def test_attempts_cut_by_the_callers_deadline_are_no_error_signal(config: Config) -> None:
    """A caller with tight deadlines cannot push a version into an error regression: its cut
    attempts (outcome "deadline") are not error signals of the version."""
    d = Detector(AlertSettings(), config)
    d.feed([_complete(f"n{i}", NEW, "deadline", status="DEADLINE_EXCEEDED") for i in range(50)])
    assert d.snapshot() == {} and d.signals == 0


def test_error_regression_from_records(config: Config) -> None:
    """A version whose every attempt fails (error_500) alarms on the error kind within
    min_samples attempts once the pinned version's baseline is there."""
    fired: list[Alarm] = []
    d = Detector(AlertSettings(), config, on_alarm=fired.append)
    d.feed([_complete(f"o{i}", OLD) for i in range(200)])
    for i in range(20):
        d.feed([_complete(f"n{i}", NEW, "server", status="UNAVAILABLE")])
        if fired:
            break
    assert fired and fired[0].kind == "error" and fired[0].tested == 10


def _raw(**extra: Any) -> dict[str, Any]:
    from importlib import resources

    import yaml

    raw: dict[str, Any] = yaml.safe_load(
        resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw.update(extra)
    return raw


@pytest.mark.parametrize(("alerts", "problem"), [
    ({"threshold": 0}, "alerts.threshold: must be >= 1"),
    ({"drift": "x"}, "alerts.drift: must be a float, got str"),
    ({"webhook_url": "ftp://x"}, "alerts.webhook_url: must be an http:// or https:// URL"),
    ({"webhook_url": "http://" + "x" * 3000}, "alerts.webhook_url: longer than 2048"),
    ({"baseline": 5}, "alerts.baseline: must be >= 10"),
    ({"max_streams": 10**9}, "alerts.max_streams: must be <= 1e+06"),
    ({"sigma": 1}, "alerts.sigma: unknown field"),
    ({"z_clip": 1.0, "drift": 2.0}, "alerts.z_clip: must be > alerts.drift"),
    ("on", "alerts: must be a mapping"),
])
def test_alerts_config_errors_name_the_field(alerts: Any, problem: str) -> None:
    """Every bad `alerts` value is rejected naming its exact field."""
    with pytest.raises(ConfigError) as err:
        parse_alerts(parse_config(_raw(alerts=alerts)))
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems


def test_alerts_defaults_and_values() -> None:
    """No section: detection on with the documented defaults; values are read as given."""
    assert parse_alerts(parse_config(_raw())) == AlertSettings()
    s = parse_alerts(parse_config(_raw(alerts={"webhook_url": "http://h/x", "rollback": False,
                                               "threshold": 20})))
    assert (s.webhook_url, s.rollback, s.threshold) == ("http://h/x", False, 20.0)


def test_rollouts_roll_back_or_hold(config: Config) -> None:
    """stop(): rolled back sends every caller to the pinned version (share 0) and says why;
    held freezes the share as the schedule would have raised it; other versions and a second
    stop are ignored."""
    now = [0.0]
    problems: list[str] = []
    ro = parse_rollout({"model": "gpt-4o", "to": NEW, "share": 0.5,
                        "step": {"share": 0.1, "every_s": 10}}, config, problems,
                       clock=lambda: now[0])
    assert not problems and ro is not None
    spec = config.models["gpt-4o"]
    r = Rollouts(ro, config.models, clock=lambda: now[0])
    assert r.state() == ("rolling", "") and r.shares(spec) == {OLD: 0.5, NEW: 0.5}
    assert r.stop("gpt-4o", OLD, "x", roll_back=True) is None
    assert r.stop("gpt-4.1", NEW, "x", roll_back=True) is None
    stopped = r.stop("gpt-4o", NEW, "judge dropped", roll_back=True)
    assert stopped is not None and stopped.share == 0.0
    assert r.shares(spec) == {OLD: 1.0, NEW: 0.0}
    assert r.state() == ("rolled_back", "judge dropped")
    assert r.version_state(spec) == (NEW, "rolled_back", "judge dropped")
    assert all(r.spec_for(spec, f"u{i}").version == OLD for i in range(200))
    assert r.stop("gpt-4o", NEW, "again", roll_back=True) is None
    now[0] = 100.0
    assert r.shares(spec)[NEW] == 0.0 and "rolled_back" in r.describe()

    held = Rollouts(ro, config.models, clock=lambda: now[0])
    now[0] = 20.0
    assert held.stop("gpt-4o", NEW, "dip", roll_back=False) is not None
    now[0] = 500.0
    assert held.shares(spec)[NEW] == pytest.approx(0.7) and held.state()[0] == "held"


def test_alert_record_and_document(config: Config) -> None:
    """An alarm becomes an `Alert` audit record (storable) and a JSON document with the
    evidence and the action; the metrics take it with bounded labels."""
    from prometheus_client import CollectorRegistry

    alarm = Alarm("gpt-4o", NEW, "v1", "code", "judge", 0.8, 0.1, 200, f"pinned {OLD}", 0.3,
                  12, 17.5, 12)
    doc = document(alarm, "rolled_back", "rollout rolled back")
    assert doc["event"] == "quality_regression" and doc["action"] == "rolled_back"
    rec = record(alarm, "rolled_back")
    assert rec.rpc == ALERT_RPC and rec.model_version == NEW and rec.features["kind"] == "judge"
    assert len(to_row(rec)) > 10
    reg = CollectorRegistry()
    m = AlertMetrics(reg)
    m.alarm(alarm)
    labels = {"model": "gpt-4o", "version": NEW, "category": "code"}
    assert reg.get_sample_value("routecore_quality_regression", labels) == 1.0
    assert reg.get_sample_value("routecore_quality_regressions_total",
                                {**labels, "kind": "judge"}) == 1.0
    m.cleared(alarm)
    assert reg.get_sample_value("routecore_quality_regression", labels) == 0.0


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after validation."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        AlertSettings().threshold = 1.0  # type: ignore[misc]


def test_judge_grades_reach_the_audit_record_and_the_detector(config: Config) -> None:
    """Cascade and ensemble steps whose reason carries a judge grade become
    features["judge"] of the Complete's audit record, and judge signals of the served
    version; steps without one (logprobs, cheap checks) add nothing."""
    from routecore.calling.types import CascadeStep, CompletionRequest, CompletionResult, Usage
    from routecore.domain import RouteRequest
    from routecore.server.records import Trace, build_record, judge_grades

    steps = (CascadeStep("gpt-4o-mini", 0.3, True, "logprobs 0.90, judge 0.30 < 0.70"),
             CascadeStep("gpt-4o", 0.8, False, "ensemble: chosen (judge 0.80)"),
             CascadeStep("o4-mini", 0.9, False, "logprobs 0.90 >= 0.70"),
             CascadeStep("x", 0.0, False, "empty answer"))
    assert judge_grades(steps) == [["gpt-4o-mini", 0.3], ["gpt-4o", 0.8]]
    req = CompletionRequest(RouteRequest(prompt="hi"))
    attempts = (Attempt("openai", "gpt-4o", f"openai/gpt-4o-{NEW}"),)
    result = CompletionResult("ok", "gpt-4o", "openai", Usage(1, 1), 0.0, 1.0, attempts,
                              cascade_steps=steps, request_id="r1")
    trace = Trace(req)
    trace.result = result
    rec = build_record(("Complete", "r1", 0.0, 0.001, "OK", None, trace), 0.0,
                       store_prompts=False)
    assert isinstance(rec, AuditRecord) and rec.features["judge"] == judge_grades(steps)
    d = Detector(AlertSettings(), config)
    d.feed([rec])
    assert {k[1:] for k in d.snapshot() if k[4] == "judge"} == {(NEW, rec.router_version,
                                                                  rec.category, "judge")}


async def test_shadow_outcomes_are_shadow_signals_of_the_served_version(config: Config) -> None:
    """The shadow runner's judged outcomes reach the detector as `shadow` signals of the
    version that served the request (the rolled-out one when this process remembers it);
    unjudged outcomes add nothing."""
    from routecore.observe.shadow import ShadowOutcome
    from routecore.server.alerting import Alerting
    from routecore.server.observing import Observer

    detector = Detector(AlertSettings(), config)
    alerting = Alerting(Observer(None, None, None, AlertSettings(), detector), lambda: None)
    detector.feed([_complete("served-new", NEW)])
    base = dict(ts=0.0, tenant="", user="", key_id="", category="code", strategy="balanced",
                router_version="v1", routed_model="gpt-4o", routed_model_version=OLD,
                routed_cost_usd=0.0, mode="model", shadow_model="gpt-4.1")
    alerting.on_shadow(ShadowOutcome(request_id="served-new", routed_score=0.7, **base))
    alerting.on_shadow(ShadowOutcome(request_id="elsewhere", routed_score=0.9, **base))
    alerting.on_shadow(ShadowOutcome(request_id="x", status="UNAVAILABLE", **base))
    shadow = {k[1]: v[:2] for k, v in detector.snapshot().items() if k[4] == "shadow"}
    assert shadow == {NEW: (1, 0.7), OLD: (1, 0.9)}
    await alerting.aclose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_alert_rows_are_stored_and_listed(backend: str, tmp_path: Any,
                                          request: pytest.FixtureRequest) -> None:
    """An Alert record goes through the audit store (SQLite or PostgreSQL) and comes back
    from `alerts()` with its evidence; the summary counts it as an alert, not a request."""
    import asyncio

    from routecore.observe.store import alerts, open_store, summary

    target = str(tmp_path / "audit.db") if backend == "sqlite" else \
        request.getfixturevalue("postgres_dsn")
    alarm = Alarm("gpt-4o", NEW, "v1", "code", "feedback", 0.8, 0.1, 200, f"pinned {OLD}",
                  0.2, 50, 20.0, 12, at=1000.0)  # an old time: deleted below, alone

    async def run() -> None:
        store = open_store(target)
        try:
            await store.write([to_row(record(alarm, "rolled_back", "rolled back"))])
            found = [a for a in await alerts(target, since=999.0) if a["ts"] < 2000.0]
            assert len(found) == 1
            assert (found[0]["model_version"], found[0]["features"]["action"]) == \
                (NEW, "rolled_back")
            rows = [r for r in await summary(target, since=999.0) if r["day"] == "1970-01-01"]
            assert [(r["requests"], r["errors"], r["alerts"]) for r in rows] == [(0, 0, 1)]
        finally:
            await store.delete_before(2000.0)
            await store.close()

    asyncio.run(run())
