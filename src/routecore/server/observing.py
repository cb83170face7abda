"""Wiring of the audit trail and metrics for one serving process.

`Observer.start` reads the `audit` and `metrics` sections, builds the metric
objects (when metrics are on), the recorder (when either is on) and the
/metrics endpoint; `record` is what the interceptor calls per RPC (None when
both are off, so an RPC then pays nothing). With `alerts.enabled` (the default)
the recorder also feeds the quality regression detector (observe/regression.py),
on its writer thread; server/alerting.py acts on what it detects. So with audit,
metrics and traces all off the recorder still runs for the detector: only
`alerts.enabled: false` as well makes an RPC pay nothing.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping

import structlog

from routecore.calling.shadow import ShadowRunner
from routecore.config import Config
from routecore.observe.alerts import AlertMetrics
from routecore.observe.exposition import MetricsServer, metrics_registry, start_metrics_server
from routecore.observe.metrics import Metrics
from routecore.observe.recorder import Recorder, Sink
from routecore.observe.regression import AlertSettings, Detector, parse_alerts
from routecore.observe.settings import parse_audit, parse_metrics
from routecore.observe.store import is_postgres, redact_dsn
from routecore.observe.telemetry import Tracing, parse_telemetry
from routecore.server.records import RecordFn, build_record
from routecore.state.budget import Budgets

log = structlog.get_logger("routecore.observe")


@dataclasses.dataclass
class Observer:
    recorder: Recorder | None
    metrics: Metrics | None
    server: MetricsServer | None
    alerts: AlertSettings = dataclasses.field(default_factory=AlertSettings)
    detector: Detector | None = None  # alerts.enabled
    alert_metrics: AlertMetrics | None = None  # alerts.enabled and metrics on

    @property
    def record(self) -> RecordFn | None:
        return self.recorder.put if self.recorder is not None else None

    @classmethod
    def start(cls, config: Config, breaker_states: Callable[[], Mapping[str, str]],
              budgets: Budgets | None = None, *,
              audit_db: str | None = None,
              metrics_port: int | None = None, serve_metrics: bool = True,
              shadow: ShadowRunner | None = None) -> Observer:
        audit = parse_audit(config)
        if audit_db is not None:
            audit = dataclasses.replace(
                audit, enabled=True,
                postgres_dsn=audit_db if is_postgres(audit_db) else "",
                path=audit.path if is_postgres(audit_db) else audit_db)
        msettings = parse_metrics(config)
        port = metrics_port if metrics_port is not None else (msettings.port or None)
        metrics = None
        if port is not None:
            metrics = Metrics(msettings, config, metrics_registry())
        telemetry = parse_telemetry(config)
        tracing = Tracing(telemetry) if telemetry.otlp_endpoint else None
        alerts = parse_alerts(config)
        detector = Detector(alerts, config) if alerts.enabled else None
        sinks: list[Sink] = [detector.feed] if detector is not None else []
        recorder = None
        if audit.enabled or metrics is not None or tracing is not None or sinks:
            probes = [] if metrics is None else [
                lambda: metrics.set_breakers(breaker_states())]  # the live completer's
            if metrics is not None and budgets is not None and budgets.enabled:
                probes.append(functools.partial(_budget_probe, metrics, budgets))
            if metrics is not None and shadow is not None:
                probes.append(functools.partial(_shadow_probe, metrics, shadow))
            build = functools.partial(build_record, store_prompts=audit.store_prompts)
            recorder = Recorder(build, audit, metrics, probes, tracing, sinks)
            recorder.start()
        server = None
        if metrics is not None and port is not None and serve_metrics:
            server = start_metrics_server(msettings.host, port, metrics.registry)
        log.info("observability", audit=redact_dsn(audit.target) if audit.enabled else "off",
                 store_prompts=audit.store_prompts,
                 metrics=f"http://{msettings.host}:{server.port}/metrics" if server else "off",
                 traces=telemetry.otlp_endpoint or "off",
                 regression_alerts="on" if detector is not None else "off")
        alert_metrics = AlertMetrics(metrics.registry) if metrics is not None and detector \
            else None
        return cls(recorder, metrics, server, alerts, detector, alert_metrics)

    async def aclose(self) -> None:
        if self.recorder is not None:
            await self.recorder.aclose()
        if self.server is not None:
            self.server.close()


def _budget_probe(metrics: Metrics, budgets: Budgets) -> None:
    """Each budgeted tenant's used share (configured tenants and those seen in traffic)."""
    for tenant in {*budgets.config.tenants, *metrics.tenants()}:
        state = budgets.view(tenant)
        if state is not None:
            metrics.set_budget(tenant, state.share_used)


def _shadow_probe(metrics: Metrics, shadow: ShadowRunner) -> None:
    """Shadow evaluations dropped since the last flush, by reason."""
    for reason, n in shadow.take_dropped().items():
        metrics.add_shadow_dropped(reason, n)
