"""Shadow records in the metrics: spend and results apart from the callers', judged scores
into quality parity and routing accuracy, nothing counted as a request."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from routecore.config import load_config
from routecore.observe.metrics import Metrics
from routecore.observe.settings import parse_metrics
from routecore.observe.shadow import ShadowOutcome, shadow_record, winner


def _metrics() -> tuple[Metrics, CollectorRegistry]:
    config = load_config(None)
    registry = CollectorRegistry()
    return Metrics(parse_metrics(config), config, registry), registry


def _outcome(routed: float | None, shadow: float | None, *, routed_cost: float = 0.01,
             shadow_cost: float = 0.02, judge_cost: float = 0.001,
             status: str = "OK") -> ShadowOutcome:
    return ShadowOutcome(
        ts=time.time(), request_id="r", tenant="acme", user="", key_id="", category="qa",
        strategy="cost", router_version="v", routed_model="gpt-4.1-nano",
        routed_model_version="", routed_cost_usd=routed_cost, mode="model",
        shadow_model="gpt-4o", status=status, judged_by="judge" if routed is not None else "",
        judge_model="gpt-4o-mini", routed_score=routed, shadow_score=shadow,
        winner=winner(routed, shadow) if routed is not None and shadow is not None else "",
        shadow_cost_usd=shadow_cost, judge_cost_usd=judge_cost)


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels or None)


def test_judged_parity_and_accuracy_from_shadow_records() -> None:
    """Parity is the summed routed scores over the summed shadow scores; a request is
    accurate when its routed answer is acceptable and no cheaper shadow answer also is."""
    m, reg = _metrics()
    m.observe([shadow_record(_outcome(0.9, 1.0)),                       # accurate
               shadow_record(_outcome(0.5, 0.9)),                       # routed not acceptable
               shadow_record(_outcome(0.8, 0.8, shadow_cost=0.001)),    # cheaper shadow was fine
               shadow_record(_outcome(None, None, status="UNAVAILABLE"))])  # not judged
    assert _value(reg, "routecore_quality_parity") == (0.9 + 0.5 + 0.8) / (1.0 + 0.9 + 0.8)
    assert _value(reg, "routecore_routing_accuracy") == 1 / 3
    assert _value(reg, "routecore_shadow_outcomes_total", result="shadow") == 2
    assert _value(reg, "routecore_shadow_outcomes_total", result="tie") == 1
    assert _value(reg, "routecore_shadow_outcomes_total", result="error") == 1
    shadow_spend = _value(reg, "routecore_shadow_cost_usd_total", model="gpt-4o")
    assert shadow_spend is not None and abs(shadow_spend - (0.02 * 3 + 0.001)) < 1e-12
    assert _value(reg, "routecore_shadow_cost_usd_total", model="gpt-4o-mini") == 0.001 * 4
    assert _value(reg, "routecore_cost_usd_total", model="gpt-4o", tenant="acme") is None
    assert _value(reg, "routecore_requests_total", rpc="Shadow", status="OK") is None


def test_parity_is_estimated_until_shadow_judges() -> None:
    """With no judged shadow outcome in the window, parity stays the predicted estimate;
    shadow drops are counted by reason from zero."""
    m, reg = _metrics()
    m.refresh(time.time())
    assert _value(reg, "routecore_shadow_dropped_total", reason="queue_full") == 0
    m.add_shadow_dropped("cap", 3)
    assert _value(reg, "routecore_shadow_dropped_total", reason="cap") == 3
    parity = _value(reg, "routecore_quality_parity")
    assert parity is not None and parity != parity  # NaN: nothing observed yet
