"""OpenTelemetry: with telemetry.otlp_endpoint set, each RPC reaches an OTLP/HTTP receiver as
a span with decision and attempt children; without it, opentelemetry is not imported."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from aiohttp import web

from routecore.config import parse_config
from routecore.errors import ConfigError
from routecore.observe.telemetry import parse_telemetry
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc


def _config(**sections: Any) -> Any:
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw.update(sections)
    return parse_config(raw)


async def test_rpcs_are_exported_as_spans(tmp_path: Path) -> None:
    """A Complete becomes a routecore.Complete span whose children are the decision and each
    upstream attempt, received by a real OTLP/HTTP endpoint."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    spans: list[Any] = []

    async def receive(request: web.Request) -> web.Response:
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(await request.read())
        spans.extend(s for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")

    collector = web.Application()
    collector.router.add_post("/v1/traces", receive)
    runner = web.AppRunner(collector)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    app = App.from_config(_config(telemetry={"otlp_endpoint": f"http://127.0.0.1:{port}"}),
                          access_log=False, feedback_db=str(tmp_path / "fb.db"))
    app.audit_db = str(tmp_path / "audit.db")
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            res = await router_pb2_grpc.RouterStub(ch).Complete(pb.CompleteRequest(
                route=pb.RouteRequest(prompt="What is the capital of Peru?"),
                max_output_tokens=16), timeout=10)
    finally:
        await app.stop(0.5)  # flushes the recorder, then the span exporter
        await runner.cleanup()
    (root,) = [s for s in spans if s.name == "routecore.Complete"]
    children = [s for s in spans if s.parent_span_id == root.span_id]
    assert {s.name for s in children} == {"routecore.decision", "routecore.attempt"}
    assert len([s for s in children if s.name == "routecore.attempt"]) == len(res.attempts)
    attrs = {a.key: a.value for a in root.attributes}
    assert attrs["routecore.served_model"].string_value == res.model
    assert all(root.start_time_unix_nano <= s.start_time_unix_nano and
               s.end_time_unix_nano <= root.end_time_unix_nano + 1_000_000 for s in children)


def test_no_endpoint_imports_nothing_and_bad_endpoint_is_named() -> None:
    """Without telemetry.otlp_endpoint a served process never imports opentelemetry; a
    malformed endpoint is a config error naming the field."""
    code = ("import sys; from routecore.config import load_config; "
            "from routecore.server.observing import Observer; "
            "from routecore.observe.telemetry import parse_telemetry; "
            "parse_telemetry(load_config(None)); "
            "print(any(m.startswith('opentelemetry') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
    with pytest.raises(ConfigError, match=r"telemetry.otlp_endpoint: must be an http"):
        parse_telemetry(_config(telemetry={"otlp_endpoint": "collector:4317"}))
