"""The RouteBatch RPC over a real grpc.aio server: same decisions as Route, per-item errors, caps."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from routecore.routing.batch import MAX_BATCH, MAX_BATCH_EXPLAINED
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

Stub = router_pb2_grpc.RouterStub

PROMPTS = [
    "What is 2+2?",
    "Write a Python function that merges two sorted lists.",
    "Prove step by step that the square root of 2 is irrational.",
    "Traduis cette phrase en anglais : « le chat dort sur le canapé ».",
    "请把这句话翻译成英文。",
]


async def _status(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value.code(), info.value.details() or ""


async def test_batch_decisions_equal_single_routes(stub: Stub) -> None:
    """Each batch decision equals the Route decision for the same request, in request order."""
    reqs = [pb.RouteRequest(prompt=p) for p in PROMPTS]
    reqs.append(pb.RouteRequest(messages=[pb.Message(role="system", content="Be terse."),
                                          pb.Message(role="user", content="Hello there!")]))
    reqs.append(pb.RouteRequest(prompt="Summarize this memo.", strategy="cost",
                                constraints=pb.Constraints(required_capabilities=["vision"])))
    batch = await stub.RouteBatch(pb.RouteBatchRequest(requests=reqs))
    assert len(batch.decisions) == len(reqs) and not batch.errors
    for req, got in zip(reqs, batch.decisions, strict=True):
        want = await stub.Route(req)
        for field in ("model", "provider", "fallbacks", "category", "reason", "strategy",
                      "input_tokens"):
            assert getattr(got, field) == getattr(want, field), field
        # The batch scores exemplars in one float32 matrix product: equal up to rounding.
        for field in ("complexity", "category_confidence", "estimated_cost_usd",
                      "estimated_latency_ms", "predicted_quality"):
            assert getattr(got, field) == pytest.approx(getattr(want, field), rel=1e-6), field
        assert not got.candidates and got.request_id and got.decision_micros > 0
    assert len({d.request_id for d in batch.decisions}) == len(reqs)
    explained = await stub.RouteBatch(pb.RouteBatchRequest(requests=reqs[:2], explain=True))
    assert all(len(d.candidates) > 1 for d in explained.decisions)


async def test_bad_items_get_their_own_errors(stub: Stub) -> None:
    """Bad items among good ones get per-item errors naming their index; the good ones route."""
    reqs = [
        pb.RouteRequest(prompt="What is the capital of France?"),
        pb.RouteRequest(prompt="   "),
        pb.RouteRequest(prompt="hi", strategy="telepathy"),
        pb.RouteRequest(prompt="Write a haiku about rain."),
        pb.RouteRequest(prompt="hi", constraints=pb.Constraints(deny_models=["no-such-model"])),
        pb.RouteRequest(prompt="hi", constraints=pb.Constraints(max_cost_usd=1e-12)),
        pb.RouteRequest(prompt="hi", constraints=pb.Constraints(max_latency_ms=-1)),
        pb.RouteRequest(prompt="hi", messages=[pb.Message(role="user", content="both")]),
    ]
    resp = await stub.RouteBatch(pb.RouteBatchRequest(requests=reqs))
    assert len(resp.decisions) == len(reqs)
    errors = {e.index: e for e in resp.errors}
    assert sorted(errors) == [1, 2, 4, 5, 6, 7]
    assert resp.decisions[0].model and resp.decisions[3].model
    for i in errors:
        assert resp.decisions[i].model == "" and errors[i].message.startswith(f"requests[{i}]: ")
    assert errors[1].code == "INVALID_ARGUMENT" and "prompt: must not be empty" in errors[1].message
    assert errors[2].code == "INVALID_ARGUMENT" and "telepathy" in errors[2].message
    assert errors[4].code == "INVALID_ARGUMENT" and "no-such-model" in errors[4].message
    assert errors[5].code == "FAILED_PRECONDITION" and "max_cost_usd" in errors[5].message
    assert errors[6].code == "INVALID_ARGUMENT" and "max_latency_ms" in errors[6].message
    assert all(len(e.message) <= 1000 for e in resp.errors)


async def test_empty_and_oversized_batches_are_refused(stub: Stub) -> None:
    """An empty batch and one over the cap are INVALID_ARGUMENT; a full batch routes every item."""
    code, msg = await _status(stub.RouteBatch(pb.RouteBatchRequest()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "requests: must not be empty" in msg
    item = pb.RouteRequest(prompt="hi there, what time is it in Tokyo?")
    code, msg = await _status(stub.RouteBatch(pb.RouteBatchRequest(
        requests=[item] * (MAX_BATCH + 1))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and f"limit of {MAX_BATCH}" in msg
    code, msg = await _status(stub.RouteBatch(pb.RouteBatchRequest(
        requests=[item] * (MAX_BATCH_EXPLAINED + 1), explain=True)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and f"limit of {MAX_BATCH_EXPLAINED}" in msg
    full = await stub.RouteBatch(pb.RouteBatchRequest(requests=[item] * MAX_BATCH))
    assert len(full.decisions) == MAX_BATCH and not full.errors
    assert len({d.request_id for d in full.decisions}) == MAX_BATCH


async def test_feedback_names_a_batch_decision(stub: Stub) -> None:
    """Feedback by request id works for a decision made in a batch."""
    resp = await stub.RouteBatch(pb.RouteBatchRequest(requests=[pb.RouteRequest(prompt="hi")]))
    d = resp.decisions[0]
    fb = await stub.Feedback(pb.FeedbackRequest(request_id=d.request_id, model=d.model, score=1))
    assert fb.feedback_id


async def test_auth_scopes_each_item(tmp_path: Path) -> None:
    """With API keys, each item is scoped to the caller's key: an item naming another tenant
    or a model outside the key's list gets PERMISSION_DENIED, the others route as the key's
    tenant, and another tenant cannot give feedback on the batch's request ids."""
    from test_auth_rpc import ACME, GLOBEX, NARROW, auth_config, bearer

    app = App.from_config(auth_config(), access_log=False, feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = Stub(ch)
            code, _ = await _status(stub.RouteBatch(pb.RouteBatchRequest(
                requests=[pb.RouteRequest(prompt="hi")])))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            resp = await stub.RouteBatch(pb.RouteBatchRequest(requests=[
                pb.RouteRequest(prompt="hi"),
                pb.RouteRequest(prompt="hi", tenant="globex"),
                pb.RouteRequest(prompt="hi", tenant="acme"),
            ]), metadata=bearer(ACME))
            assert [e.index for e in resp.errors] == [1]
            assert resp.errors[0].code == "PERMISSION_DENIED"
            assert resp.decisions[0].model and resp.decisions[2].model
            narrow = await stub.RouteBatch(pb.RouteBatchRequest(requests=[
                pb.RouteRequest(prompt="Prove Fermat's little theorem."),
                pb.RouteRequest(prompt="hi", constraints=pb.Constraints(allow_models=["gpt-5"])),
            ]), metadata=bearer(NARROW))
            assert narrow.decisions[0].model in ("gpt-4o-mini", "gpt-4.1-nano")
            assert [(e.index, e.code) for e in narrow.errors] == [(1, "PERMISSION_DENIED")]
            rid = resp.decisions[0].request_id
            code, _ = await _status(stub.Feedback(pb.FeedbackRequest(request_id=rid, score=1),
                                                  metadata=bearer(GLOBEX)))
            assert code == grpc.StatusCode.NOT_FOUND
            assert (await stub.Feedback(pb.FeedbackRequest(request_id=rid, score=1),
                                        metadata=bearer(ACME))).feedback_id
    finally:
        await app.stop(0.5)
