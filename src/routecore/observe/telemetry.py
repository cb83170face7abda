"""OpenTelemetry traces, when `telemetry.otlp_endpoint` is set (else nothing here runs and
opentelemetry is never imported):

    telemetry:
      otlp_endpoint: http://otel-collector:4318    # OTLP over HTTP; /v1/traces is added
      service_name: routecore

Spans are made from the audit records by the recorder's writer, after the fact
and off the request path, with the times the record carries: one span per RPC
(`routecore.Route`, `routecore.Complete`, ...), a child `routecore.decision`
span for the routing decision and one `routecore.attempt` child per upstream
attempt. Attempts are laid end to end after the decision: their durations are
measured, their start times within the RPC are not recorded (an approximation
for retries that overlapped a backoff). The SDK batches and exports them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from routecore.config import Config, _Reader
from routecore.errors import ConfigError
from routecore.observe.record import AuditRecord


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    otlp_endpoint: str  # "" = no tracing
    service_name: str


def parse_telemetry(config: Config) -> TelemetrySettings:
    r = _Reader()
    n = r.mapping(config.extra.get("telemetry"), "telemetry", required=False)
    r.unknown(n, "telemetry", {"otlp_endpoint", "service_name"})
    endpoint = r.get(n, "otlp_endpoint", "telemetry", str, "") or ""
    if endpoint:
        url = urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.netloc:
            r.fail("telemetry.otlp_endpoint", "must be an http(s):// URL (OTLP over HTTP)")
        elif url.path in ("", "/"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"
    settings = TelemetrySettings(endpoint, r.get(n, "service_name", "telemetry", str,
                                                 "routecore") or "routecore")
    if r.problems:
        raise ConfigError(r.problems)
    if endpoint:
        try:
            import opentelemetry.sdk  # noqa: F401
        except ImportError:
            raise ConfigError(["telemetry.otlp_endpoint: needs the OpenTelemetry SDK "
                               "(pip install 'routecore[otel]')"]) from None
    return settings


class Tracing:
    """A tracer provider exporting over OTLP/HTTP (or to `exporter`)."""

    def __init__(self, settings: TelemetrySettings, exporter: Any = None) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint)
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            shutdown_on_exit=False)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("routecore")

    def export(self, records: Iterable[AuditRecord]) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        tracer = self.tracer
        for rec in records:
            end = int(rec.ts * 1e9)
            start = end - int(rec.latency_ms * 1e6)
            root = tracer.start_span(f"routecore.{rec.rpc}", start_time=start, attributes={
                "routecore.request_id": rec.request_id, "routecore.tenant": rec.tenant,
                "routecore.status": rec.status, "routecore.model": rec.model,
                "routecore.served_model": rec.served_model, "routecore.strategy": rec.strategy,
                "routecore.category": rec.category, "routecore.cost_usd": rec.cost_usd,
                "routecore.input_tokens": rec.input_tokens,
                "routecore.output_tokens": rec.output_tokens})
            if rec.status != "OK":
                root.set_status(Status(StatusCode.ERROR, rec.error[:200]))
            ctx = trace.set_span_in_context(root)
            cursor = start
            if rec.decision_us:
                cursor = start + rec.decision_us * 1000
                tracer.start_span("routecore.decision", ctx, start_time=start, attributes={
                    "routecore.model": rec.model, "routecore.category": rec.category,
                    "routecore.candidates": len(rec.candidates)}).end(end_time=cursor)
            for model, deployment, _prov, outcome, ms, retry, err in rec.attempts:
                span = tracer.start_span("routecore.attempt", ctx, start_time=cursor, attributes={
                    "routecore.model": model, "routecore.deployment": deployment,
                    "routecore.outcome": outcome, "routecore.retry": retry})
                if outcome != "ok":
                    span.set_status(Status(StatusCode.ERROR, err[:200]))
                cursor += int(ms * 1e6)
                span.end(end_time=cursor)
            root.end(end_time=end)

    def close(self) -> None:
        """Export what is buffered and stop (blocking: call it off the event loop)."""
        self.provider.shutdown()
