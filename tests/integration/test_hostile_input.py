"""Hostile input over a real server: huge values are refused with short statuses, never echoed
whole into a status or a log line, and request ids are bounded at the edge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from structlog.testing import capture_logs

from routecore.config import load_config
from routecore.errors import NoModelAvailable
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

Stub = router_pb2_grpc.RouterStub
MB = "x" * (1 << 20)
MAX_DETAILS = 2100  # errors.MAX_MESSAGE_CHARS plus the cut marker


@pytest.fixture
async def logged_stub(tmp_path: Path) -> AsyncIterator[Stub]:
    app = App.from_config(load_config(None), access_log=True,
                          feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    async with grpc.aio.insecure_channel(
            f"127.0.0.1:{app.port}",
            options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        yield Stub(ch)
    await app.stop(0.5)


async def _refused(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details() or ""


@pytest.mark.parametrize(("request_", "needle"), [
    (pb.RouteRequest(prompt="hi", strategy=MB), "strategy: unknown strategy"),
    (pb.RouteRequest(messages=[pb.Message(role=MB, content="hi")]), "messages[0].role"),
    (pb.RouteRequest(prompt="hi", request_id=MB), "request_id: must be 1-128 characters"),
    (pb.RouteRequest(prompt="hi", constraints=pb.Constraints(
        allow_models=[f"model-{i}-{'y' * 20}" for i in range(100_000)])),
     "and 99995 more"),
    (pb.RouteRequest(prompt="hi", constraints=pb.Constraints(required_capabilities=[MB])),
     "constraints.required_capabilities: unknown"),
])
async def test_huge_values_get_short_statuses_and_log_lines(logged_stub: Stub,
                                                            request_: pb.RouteRequest,
                                                            needle: str) -> None:
    """A 1 MB strategy, role, request id or capability, or 100k unknown models, is
    INVALID_ARGUMENT with a status under 2 KB naming the field, and the log line is short too."""
    with capture_logs() as logs:
        code, details = await _refused(logged_stub.Route(request_))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details[:300])
    assert needle in details and len(details) < MAX_DETAILS, details[:300]
    assert logs and all(len(str(entry)) < 4 * MAX_DETAILS for entry in logs)
    assert (await logged_stub.Route(pb.RouteRequest(prompt="still serving?"))).model


@pytest.mark.parametrize("rid", ["r" * 129, "bad id with spaces", "../../etc/passwd", "-leading",
                                 "é-unicode"])
async def test_request_ids_are_bounded_at_the_edge(logged_stub: Stub, rid: str) -> None:
    """A request id over 128 characters or outside [A-Za-z0-9._:-] is INVALID_ARGUMENT, in the
    body, in x-request-id metadata, and in Feedback."""
    body = await _refused(logged_stub.Route(pb.RouteRequest(prompt="hi", request_id=rid)))
    feedback = await _refused(logged_stub.Feedback(pb.FeedbackRequest(request_id=rid, score=1.0)))
    assert body[0] == feedback[0] == grpc.StatusCode.INVALID_ARGUMENT, (body, feedback)
    if rid.isascii():  # gRPC itself refuses non-ASCII metadata values
        meta = await _refused(logged_stub.Route(pb.RouteRequest(prompt="hi"),
                                                metadata=(("x-request-id", rid),)))
        assert meta[0] == grpc.StatusCode.INVALID_ARGUMENT and "x-request-id" in meta[1]
    ok = await logged_stub.Route(pb.RouteRequest(prompt="hi"),
                                 metadata=(("x-request-id", "trace-01:a.b_c"),))
    assert ok.request_id == "trace-01:a.b_c"


async def test_unknown_feedback_id_is_not_echoed_whole(logged_stub: Stub) -> None:
    """NOT_FOUND for a 128-character unknown request id echoes at most a short prefix of it."""
    rid = "a" * 128
    code, details = await _refused(logged_stub.Feedback(pb.FeedbackRequest(request_id=rid,
                                                                           score=1.0)))
    assert code == grpc.StatusCode.NOT_FOUND and rid not in details and "128 chars" in details


def test_no_model_fits_message_is_capped() -> None:
    """With 5000 rejected models the message says how many and lists only the first few."""
    exc = NoModelAvailable({f"model-{i}": "over max_cost_usd" for i in range(5000)})
    assert len(exc.message) < 1000 and "5000 models rejected" in exc.message
    assert "5000 models ('model-0', 'model-1', 'model-2' and 4997 more): over max_cost_usd" \
        in exc.message
    many = NoModelAvailable({f"model-{i}": f"estimate {i} > max_cost_usd" for i in range(5000)})
    assert len(many.message) < 1000 and "and 4992 more reasons" in many.message
