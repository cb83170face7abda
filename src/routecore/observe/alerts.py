"""What a detected quality regression leaves behind: metrics, an audit record and
the JSON document a webhook receives.

    routecore_quality_regression{model,version,category}      1 while alarmed, else 0
    routecore_quality_regressions_total{model,version,category,kind}   alarms fired
    routecore_rollout_rollbacks_total{model,version}          rollouts stopped by one

Labels come from the config (the detector drops signals for anything else), so
they stay bounded. The audit record has rpc "Alert" and status
"quality_regression"; `routecore audit summary` counts and lists them.
"""

from __future__ import annotations

import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from routecore.observe.record import AuditRecord
from routecore.observe.regression import Alarm

ALERT_RPC = "Alert"
ALERT_STATUS = "quality_regression"


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.active = Gauge("routecore_quality_regression", "1 while a quality regression "
                            "is detected for the model version and category, else 0",
                            ["model", "version", "category"], registry=registry,
                            multiprocess_mode="livemax")
        self.fired = Counter("routecore_quality_regressions", "Quality regressions detected",
                             ["model", "version", "category", "kind"], registry=registry)
        self.rollbacks = Counter("routecore_rollout_rollbacks", "Rollouts rolled back or held "
                                 "by a detected regression", ["model", "version"],
                                 registry=registry)

    def alarm(self, alarm: Alarm) -> None:
        self.active.labels(alarm.model, alarm.version, alarm.category).set(1.0)
        self.fired.labels(alarm.model, alarm.version, alarm.category, alarm.kind).inc()

    def cleared(self, alarm: Alarm) -> None:
        self.active.labels(alarm.model, alarm.version, alarm.category).set(0.0)

    def rollback(self, model: str, version: str) -> None:
        self.rollbacks.labels(model, version).inc()


def document(alarm: Alarm, action: str, reason: str = "") -> dict[str, Any]:
    """The alert as JSON (log fields, webhook body, audit features). `action`: what the
    rollout did about it ("rolled_back", "held" or "none")."""
    return {"event": "quality_regression", "model": alarm.model, "version": alarm.version,
            "router_version": alarm.router_version, "category": alarm.category,
            "kind": alarm.kind, "baseline_mean": round(alarm.baseline_mean, 4),
            "baseline_sd": round(alarm.baseline_sd, 4), "baseline_n": alarm.baseline_n,
            "reference": alarm.reference, "recent_mean": round(alarm.recent_mean, 4),
            "recent_n": alarm.recent_n, "statistic": round(alarm.statistic, 3),
            "tested": alarm.tested, "at": alarm.at, "action": action,
            "message": alarm.message() + (f"; {reason}" if reason else "")}


def record(alarm: Alarm, action: str, reason: str = "") -> AuditRecord:
    """The alert as an audit record (stored beside the RPCs it was detected from)."""
    doc = document(alarm, action, reason)
    return AuditRecord(ts=alarm.at, request_id=f"alert-{uuid.uuid4().hex[:16]}", rpc=ALERT_RPC,
                       status=ALERT_STATUS, error=doc.pop("message")[:500],
                       router_version=alarm.router_version, category=alarm.category,
                       model=alarm.model, model_version=alarm.version,
                       features={k: v for k, v in doc.items()
                                 if k not in ("model", "version", "router_version", "category",
                                              "event", "at")})
