"""Hostile numbers over gRPC: inf and nan are refused with a message naming the field."""

from __future__ import annotations

import grpc
import pytest

from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(("request_kw", "field"), [
    ({"weight_quality": 1.0, "weight_cost": INF}, "weights.cost"),
    ({"weight_quality": NAN}, "weights.quality"),
    ({"constraints": pb.Constraints(max_cost_usd=INF)}, "constraints.max_cost_usd"),
    ({"constraints": pb.Constraints(max_latency_ms=INF)}, "constraints.max_latency_ms"),
    ({"willingness_to_pay": NAN}, "willingness_to_pay"),
])
async def test_route_rejects_non_finite_numbers(stub: router_pb2_grpc.RouterStub,
                                                request_kw: dict[str, object], field: str) -> None:
    """A Route with an inf or nan weight, limit or knob is INVALID_ARGUMENT naming the field."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Route(pb.RouteRequest(prompt="What is 2+2?", **request_kw))  # type: ignore[arg-type]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(f"{field}: must be")


@pytest.mark.parametrize(("request_kw", "field"), [
    ({"temperature": INF}, "temperature"),
    ({"cascade_threshold": NAN}, "cascade_threshold"),
])
async def test_complete_rejects_non_finite_numbers(stub: router_pb2_grpc.RouterStub,
                                                   request_kw: dict[str, object],
                                                   field: str) -> None:
    """A Complete with an inf temperature or nan threshold is INVALID_ARGUMENT naming it."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(prompt="hi"), **request_kw))  # type: ignore[arg-type]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(f"{field}: must be")


async def test_feedback_rejects_non_finite_score(stub: router_pb2_grpc.RouterStub) -> None:
    """Feedback with an inf score is INVALID_ARGUMENT, not stored."""
    d = await stub.Route(pb.RouteRequest(prompt="What is 2+2?"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Feedback(pb.FeedbackRequest(request_id=d.request_id, model=d.model, score=INF))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
