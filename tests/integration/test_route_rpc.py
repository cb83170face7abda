"""The Route and ListModels RPCs over a real grpc.aio server on an ephemeral port."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

Stub = router_pb2_grpc.RouterStub


async def _status(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value.code(), info.value.details() or ""


async def test_route_fills_every_field(stub: Stub) -> None:
    """A Route call with explain returns a decision with every field of RouteDecision filled."""
    d = await stub.Route(pb.RouteRequest(prompt="Write a Python function that merges two sorted lists.",
                                         explain=True))
    assert d.model and d.provider and d.category and d.reason and d.router_version
    assert d.fallbacks and d.candidates and d.request_id and d.strategy and d.model_version
    assert d.estimated_cost_usd > 0 and d.estimated_latency_ms > 0 and d.predicted_quality > 0
    assert 0 <= d.complexity <= 1 and d.decision_micros > 0 and d.input_tokens > 0
    assert {c.model for c in d.candidates} >= {d.model, *d.fallbacks}
    chosen = next(c for c in d.candidates if c.model == d.model)
    assert chosen.rejected_reason == "" and chosen.estimated_cost_usd == d.estimated_cost_usd


async def test_candidates_only_with_explain(stub: Stub) -> None:
    """Without explain the decision has no candidates but the same choice and its one-line reason."""
    prompt = "Write a Python function that merges two sorted lists."
    short = await stub.Route(pb.RouteRequest(prompt=prompt))
    full = await stub.Route(pb.RouteRequest(prompt=prompt, explain=True))
    assert not short.candidates and len(full.candidates) > 1
    assert short.model == full.model and short.fallbacks == full.fallbacks
    assert short.reason and short.reason == full.reason


async def test_easy_prompt_is_cheaper_than_proof_and_code(stub: Stub) -> None:
    """'What is 2+2?' goes to a cheaper model than a multi-step proof or a code request."""
    easy = await stub.Route(pb.RouteRequest(prompt="What is 2+2?"))
    proof = await stub.Route(pb.RouteRequest(
        prompt="Prove step by step that the square root of 2 is irrational, then generalise the "
               "proof to the square root of any prime p and justify each lemma rigorously."))
    code = await stub.Route(pb.RouteRequest(
        prompt="Implement a thread-safe LRU cache in Python with O(1) get and put, including "
               "unit tests and handling of edge cases.\n```python\nclass LRUCache:\n    pass\n```"))
    assert easy.estimated_cost_usd < proof.estimated_cost_usd
    assert easy.estimated_cost_usd < code.estimated_cost_usd
    assert code.category == "code" and proof.category in ("math", "reasoning")
    price = {m.name: m.output_price_per_mtok for m in (await stub.ListModels(pb.ListModelsRequest())).models}
    assert price[easy.model] < price[proof.model] and price[easy.model] < price[code.model]


async def test_messages_and_constraints(stub: Stub) -> None:
    """Chat messages route, and allow/deny/capability constraints are honoured."""
    req = pb.RouteRequest(
        messages=[pb.Message(role="system", content="You are terse."),
                  pb.Message(role="user", content="Describe this picture of a cat.")],
        constraints=pb.Constraints(required_capabilities=["vision"], deny_models=["gpt-4o"],
                                   allow_models=["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"]),
        explain=True)
    d = await stub.Route(req)
    assert d.model in ("gpt-4o-mini", "claude-sonnet-4")
    reasons = {c.model: c.rejected_reason for c in d.candidates}
    assert reasons["gpt-4o"] == "denied by deny_models"
    assert reasons["codestral"] == "not in allow_models"


@pytest.mark.parametrize("strategy", ["complexity", "domain", "cost", "latency", "quality",
                                      "multi_objective"])
async def test_every_strategy_over_rpc(stub: Stub, strategy: str) -> None:
    """Each built-in strategy answers over the RPC and reports itself."""
    d = await stub.Route(pb.RouteRequest(prompt="Summarize this article in three bullets.",
                                         strategy=strategy))
    assert d.strategy == strategy and d.model


@pytest.mark.parametrize(("request_", "code", "needle"), [
    (pb.RouteRequest(prompt=""), grpc.StatusCode.INVALID_ARGUMENT, "prompt: must not be empty"),
    (pb.RouteRequest(prompt="   \n"), grpc.StatusCode.INVALID_ARGUMENT, "must not be empty"),
    (pb.RouteRequest(prompt="hi", constraints=pb.Constraints(allow_models=["gpt-9"])),
     grpc.StatusCode.INVALID_ARGUMENT, "constraints.allow_models: unknown model(s) 'gpt-9'"),
    (pb.RouteRequest(prompt="hi", constraints=pb.Constraints(max_cost_usd=-1)),
     grpc.StatusCode.INVALID_ARGUMENT, "constraints.max_cost_usd: must be >= 0"),
    (pb.RouteRequest(prompt="hi", constraints=pb.Constraints(min_quality=-0.1)),
     grpc.StatusCode.INVALID_ARGUMENT, "constraints.min_quality: must be >= 0"),
    (pb.RouteRequest(prompt="hi", strategy="vibes"), grpc.StatusCode.INVALID_ARGUMENT,
     "strategy: unknown strategy 'vibes'"),
    (pb.RouteRequest(prompt="hi", messages=[pb.Message(role="user", content="x")]),
     grpc.StatusCode.INVALID_ARGUMENT, "not both"),
    (pb.RouteRequest(messages=[pb.Message(role="wizard", content="x")]),
     grpc.StatusCode.INVALID_ARGUMENT, "messages[0].role: unknown role 'wizard'"),
    (pb.RouteRequest(prompt="hi", constraints=pb.Constraints(required_capabilities=["telepathy"])),
     grpc.StatusCode.INVALID_ARGUMENT, "unknown 'telepathy'"),
    (pb.RouteRequest(prompt="hi", constraints=pb.Constraints(max_cost_usd=1e-12)),
     grpc.StatusCode.FAILED_PRECONDITION, "no model satisfies the constraints"),
    (pb.RouteRequest(prompt="hi", constraints=pb.Constraints(
        required_capabilities=["vision"], allow_models=["codestral"])),
     grpc.StatusCode.FAILED_PRECONDITION, "codestral: lacks capability: vision"),
])
async def test_bad_input_gets_the_right_status(stub: Stub, request_: pb.RouteRequest,
                                               code: grpc.StatusCode, needle: str) -> None:
    """Malformed or unsatisfiable requests get the mapped status and a message naming the problem."""
    got, details = await _status(stub.Route(request_))
    assert got == code and needle in details, (got, details)


async def test_oversized_message_is_resource_exhausted(stub: Stub) -> None:
    """A request over the max message size gets RESOURCE_EXHAUSTED, and the server keeps serving."""
    got, _ = await _status(stub.Route(pb.RouteRequest(prompt="x" * (5 * 1024 * 1024))))
    assert got == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await stub.Route(pb.RouteRequest(prompt="still alive?"))).model


async def test_malformed_bytes_do_not_take_the_server_down(channel: grpc.aio.Channel,
                                                           stub: Stub) -> None:
    """Bytes that are not a RouteRequest are refused and the server keeps answering."""
    raw = channel.unary_unary("/routecore.v1.Router/Route",
                              request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await raw(b"\xff\xff\xff\xff\x0f garbage")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in (info.value.details() or "")
    assert (await stub.Route(pb.RouteRequest(prompt="hello"))).model


async def test_request_id_from_metadata_is_echoed(stub: Stub) -> None:
    """A caller's x-request-id becomes the decision's request id."""
    d = await stub.Route(pb.RouteRequest(prompt="hello"), metadata=(("x-request-id", "abc-123"),))
    assert d.request_id == "abc-123"


async def test_list_models(stub: Stub) -> None:
    """ListModels returns the registry with prices and capabilities."""
    res = await stub.ListModels(pb.ListModelsRequest())
    by_name = {m.name: m for m in res.models}
    assert by_name["gpt-4o"].input_price_per_mtok == 2.5 and "vision" in by_name["gpt-4o"].capabilities
    assert res.router_version


async def test_health_and_reflection(app: App, channel: grpc.aio.Channel) -> None:
    """Health reports SERVING while up and NOT_SERVING once shutdown begins; reflection lists the service."""
    health = health_pb2_grpc.HealthStub(channel)
    res = await health.Check(health_pb2.HealthCheckRequest(service="routecore.v1.Router"))
    assert res.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    names: list[str] = []
    ask = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    async for r in refl.ServerReflectionInfo(ask):
        names += [s.name for s in r.list_services_response.service]
    assert "routecore.v1.Router" in names
    await app.health.enter_graceful_shutdown()
    res = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert res.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_list_models_shows_versions_and_the_pinned_one(stub: Stub) -> None:
    """ListModels lists each model's versions with model_id, price, pinned flag and share."""
    by_name = {m.name: m for m in (await stub.ListModels(pb.ListModelsRequest())).models}
    g = by_name["gpt-4o"]
    assert g.version == "2024-08-06" and g.model_id == "gpt-4o-2024-08-06"
    versions = {v.name: v for v in g.versions}
    assert set(versions) == {"2024-08-06", "2024-11-20"}
    assert versions["2024-08-06"].pinned and versions["2024-08-06"].share == 1.0
    assert versions["2024-11-20"].model_id == "gpt-4o-2024-11-20"
    assert not versions["2024-11-20"].pinned and versions["2024-11-20"].share == 0.0
    assert versions["2024-11-20"].input_price_per_mtok == 2.5
    (only,) = by_name["gpt-4.1"].versions  # unversioned: its one model_id, pinned
    assert only.pinned and only.model_id == only.name == by_name["gpt-4.1"].model_id
