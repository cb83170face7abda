"""API keys over a real server, tested as a hostile client: no key, wrong key, garbage and
huge headers, another tenant's ids, users and models."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from routecore.config import load_config, parse_config
from routecore.server.app import App
from routecore.server.reload import reload_config
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

Stub = router_pb2_grpc.RouterStub
ACME, GLOBEX, NARROW, BOB = "rk-acme-secret-1", "rk-globex-secret-2", "rk-narrow-3", "rk-bob-4"
PROMPT = "What is the capital of France?"


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def auth_config(extra: dict[str, Any] | None = None) -> Any:
    """The built-in config with four keys: acme, globex, a restricted acme key, acme's bob."""
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["auth"] = {"keys": [
        {"id": "acme-1", "sha256": _sha(ACME), "tenant": "acme"},
        {"id": "globex-1", "sha256": _sha(GLOBEX), "tenant": "globex"},
        {"id": "acme-narrow", "sha256": _sha(NARROW), "tenant": "acme",
         "models": ["gpt-4o-mini", "gpt-4.1-nano"], "strategies": ["cost", "latency"]},
        {"id": "acme-bob", "sha256": _sha(BOB), "tenant": "acme", "user": "bob"},
    ]}
    raw.update(extra or {})
    return parse_config(raw)


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture
async def auth_app(tmp_path: Path) -> AsyncIterator[App]:
    app = App.from_config(auth_config(), access_log=False, feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    yield app
    await app.stop(0.5)


@pytest.fixture
async def auth_channel(auth_app: App) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{auth_app.port}") as ch:
        yield ch


async def _code(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details() or ""


@pytest.mark.parametrize("metadata", [
    (),
    (("authorization", "Bearer rk-not-a-key"),),
    (("authorization", f"Bearer {ACME}x"),),
    (("authorization", f"Basic {ACME}"),),
    (("authorization", ACME),),
    (("authorization", "Bearer "),),
    (("authorization", f"Bearer {ACME} {ACME}"),),
    (("authorization", "Bearer " + "A" * 6000),),
    (("authorization", "Bearer garbage\";DROP TABLE keys;--"),),
    (("authorization", "bearer"),),
])
async def test_missing_wrong_or_garbage_keys_are_unauthenticated(
        auth_channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> None:
    """Every RPC without a valid Bearer key is UNAUTHENTICATED, and no message echoes the key."""
    stub = Stub(auth_channel)
    for call in (stub.Route(pb.RouteRequest(prompt=PROMPT), metadata=metadata),
                 stub.ListModels(pb.ListModelsRequest(), metadata=metadata),
                 stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(prompt=PROMPT)),
                               metadata=metadata),
                 stub.Feedback(pb.FeedbackRequest(prompt=PROMPT, model="gpt-4o", score=1.0),
                               metadata=metadata)):
        code, details = await _code(call)
        assert code == grpc.StatusCode.UNAUTHENTICATED, (code, details)
        assert ACME not in details and "garbage" not in details and len(details) < 200
    stream = stub.CompleteStream(pb.CompleteRequest(route=pb.RouteRequest(prompt=PROMPT)),
                                 metadata=metadata)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stream:
            pass
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_huge_authorization_header_is_refused_and_server_survives(
        auth_channel: grpc.aio.Channel) -> None:
    """A 64 KB authorization header is refused (by gRPC's metadata limit) and the server still
    serves the next caller."""
    stub = Stub(auth_channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Route(pb.RouteRequest(prompt=PROMPT),
                         metadata=(("authorization", "Bearer " + "k" * 65536),))
    assert info.value.code() != grpc.StatusCode.OK
    assert (await stub.Route(pb.RouteRequest(prompt=PROMPT), metadata=bearer(ACME))).model


async def test_health_needs_no_key_and_reflection_is_off(auth_channel: grpc.aio.Channel) -> None:
    """With auth on, health answers without a key and reflection is not served."""
    health = health_pb2_grpc.HealthStub(auth_channel)
    res = await health.Check(health_pb2.HealthCheckRequest(service="routecore.v1.Router"))
    assert res.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(auth_channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in refl.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])):
            pass
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_reflection_can_be_turned_back_on(tmp_path: Path) -> None:
    """`server.reflection: true` serves reflection even with auth on."""
    cfg = auth_config({"server": {"reflection": True}})
    app = App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            refl = reflection_pb2_grpc.ServerReflectionStub(ch)
            names = [s.name async for r in refl.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
                for s in r.list_services_response.service]
        assert "routecore.v1.Router" in names
    finally:
        await app.stop(0.5)


async def test_tenant_comes_from_the_key_and_cannot_be_widened(
        auth_channel: grpc.aio.Channel) -> None:
    """A key acts for its own tenant only: naming another tenant, or another user than a
    pinned one, is PERMISSION_DENIED; naming its own tenant or a user under it works."""
    stub = Stub(auth_channel)
    assert (await stub.Route(pb.RouteRequest(prompt=PROMPT, tenant="acme", user="alice"),
                             metadata=bearer(ACME))).model
    for req, key in ((pb.RouteRequest(prompt=PROMPT, tenant="globex"), ACME),
                     (pb.RouteRequest(prompt=PROMPT, tenant="acme"), GLOBEX),
                     (pb.RouteRequest(prompt=PROMPT, user="alice"), BOB)):
        code, details = await _code(stub.Route(req, metadata=bearer(key)))
        assert code == grpc.StatusCode.PERMISSION_DENIED, details
    complete = stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(prompt=PROMPT,
                                                                      tenant="globex")),
                             metadata=bearer(ACME))
    assert (await _code(complete))[0] == grpc.StatusCode.PERMISSION_DENIED


async def test_model_and_strategy_allow_lists(auth_channel: grpc.aio.Channel) -> None:
    """A restricted key routes only among its models and strategies; asking outside them is
    PERMISSION_DENIED, and ListModels shows only its models."""
    stub = Stub(auth_channel)
    d = await stub.Route(pb.RouteRequest(prompt="Prove that sqrt(2) is irrational."),
                         metadata=bearer(NARROW))
    assert d.model in ("gpt-4o-mini", "gpt-4.1-nano") and d.strategy == "cost"
    assert set(d.fallbacks) <= {"gpt-4o-mini", "gpt-4.1-nano"}
    denied = (pb.RouteRequest(prompt=PROMPT, strategy="quality"),
              pb.RouteRequest(prompt=PROMPT, constraints=pb.Constraints(allow_models=["gpt-5"])))
    for req in denied:
        code, details = await _code(stub.Route(req, metadata=bearer(NARROW)))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "acme-narrow" in details
    fb = stub.Feedback(pb.FeedbackRequest(prompt=PROMPT, model="gpt-5", score=1.0),
                       metadata=bearer(NARROW))
    assert (await _code(fb))[0] == grpc.StatusCode.PERMISSION_DENIED
    listed = await stub.ListModels(pb.ListModelsRequest(), metadata=bearer(NARROW))
    assert {m.name for m in listed.models} == {"gpt-4o-mini", "gpt-4.1-nano"}
    res = await stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(prompt=PROMPT)),
                              metadata=bearer(NARROW))
    assert res.model in ("gpt-4o-mini", "gpt-4.1-nano")


async def test_request_ids_belong_to_their_tenant(auth_channel: grpc.aio.Channel) -> None:
    """Tenant B's Feedback on tenant A's request id is NOT_FOUND with the same message as an id
    that never existed, and B reusing A's id as x-request-id does not overwrite A's record."""
    stub = Stub(auth_channel)
    a = await stub.Route(pb.RouteRequest(prompt=PROMPT), metadata=bearer(ACME))
    assert len(a.request_id) == 32 and int(a.request_id, 16) >= 0  # 128 random bits
    stolen = await _code(stub.Feedback(pb.FeedbackRequest(request_id=a.request_id, score=0.0),
                                       metadata=bearer(GLOBEX)))
    never = await _code(stub.Feedback(pb.FeedbackRequest(request_id="f" * 32, score=0.0),
                                      metadata=bearer(GLOBEX)))
    assert stolen[0] == never[0] == grpc.StatusCode.NOT_FOUND
    assert stolen[1].replace(a.request_id, "ID") == never[1].replace("f" * 32, "ID")
    # globex routes a different prompt under acme's id; acme's feedback still finds acme's
    # own decision (its model), not globex's.
    await stub.Route(pb.RouteRequest(prompt="Write a haiku about rust.", strategy="quality"),
                     metadata=(*bearer(GLOBEX), ("x-request-id", a.request_id)))
    res = await stub.Feedback(pb.FeedbackRequest(request_id=a.request_id, score=1.0),
                              metadata=bearer(ACME))
    assert res.feedback_id
    # acme itself reusing the id does not replace the first decision either.
    again = await stub.Route(pb.RouteRequest(prompt="Write a haiku about rust.",
                                             strategy="quality"),
                             metadata=(*bearer(ACME), ("x-request-id", a.request_id)))
    assert again.request_id == a.request_id


async def test_server_request_ids_are_random(auth_channel: grpc.aio.Channel) -> None:
    """Server-made request ids are 32 hex digits with no shared prefix or sequence."""
    stub = Stub(auth_channel)
    ids = [(await stub.Route(pb.RouteRequest(prompt=PROMPT), metadata=bearer(ACME))).request_id
           for _ in range(8)]
    assert len(set(ids)) == 8 and all(len(i) == 32 for i in ids)
    assert len({i[:8] for i in ids}) == 8  # a per-process prefix would repeat


async def test_a_key_cannot_spend_or_read_another_tenants_budget(tmp_path: Path) -> None:
    """acme's key spends acme's budget only: asking to complete or read as globex is
    PERMISSION_DENIED, globex's windows stay untouched, and each key reads only its own."""
    budgets = {"tenants": {"acme": {"usd_per_day": 5.0}, "globex": {"usd_per_day": 5.0}}}
    app = App.from_config(auth_config({"budgets": budgets}), access_log=False,
                          feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = Stub(ch)
            as_globex = stub.Complete(pb.CompleteRequest(
                route=pb.RouteRequest(prompt=PROMPT, tenant="globex")), metadata=bearer(ACME))
            assert (await _code(as_globex))[0] == grpc.StatusCode.PERMISSION_DENIED
            res = await stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(prompt=PROMPT)),
                                      metadata=bearer(ACME))
            assert res.cost_usd > 0
            read = stub.GetBudget(pb.BudgetRequest(tenant="globex"), metadata=bearer(ACME))
            assert (await _code(read))[0] == grpc.StatusCode.PERMISSION_DENIED
            nokey = stub.GetBudget(pb.BudgetRequest(tenant="acme"))
            assert (await _code(nokey))[0] == grpc.StatusCode.UNAUTHENTICATED
            mine = await stub.GetBudget(pb.BudgetRequest(), metadata=bearer(ACME))
            theirs = await stub.GetBudget(pb.BudgetRequest(), metadata=bearer(GLOBEX))
            assert mine.tenant == "acme" and theirs.tenant == "globex"
            spent = {(w.name, w.limit_name): w.spent + w.reserved for w in mine.windows}
            assert spent[("acme", "usd_per_day")] == pytest.approx(res.cost_usd, rel=1e-6)
            assert all(w.spent == 0 and w.reserved == 0 for w in theirs.windows)
    finally:
        await app.stop(0.5)


async def test_reload_revokes_a_key_without_a_restart(tmp_path: Path) -> None:
    """Removing a key from auth.keys_file and reloading makes it UNAUTHENTICATED at once while
    the other keys keep working; turning auth off by reload is refused."""
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    keys = [{"id": "acme-1", "sha256": _sha(ACME), "tenant": "acme"},
            {"id": "globex-1", "sha256": _sha(GLOBEX), "tenant": "globex"}]
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump(keys))
    raw["auth"] = {"keys_file": "keys.yaml"}
    path = tmp_path / "routecore.yaml"
    path.write_text(yaml.safe_dump(raw))
    app = App.from_config(load_config(path), access_log=False, feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = Stub(ch)
            req = pb.RouteRequest(prompt=PROMPT)
            assert (await stub.Route(req, metadata=bearer(GLOBEX))).model
            (tmp_path / "keys.yaml").write_text(yaml.safe_dump(keys[:1]))  # revoke globex
            assert await reload_config(app, str(path))
            assert (await _code(stub.Route(req, metadata=bearer(GLOBEX))))[0] == \
                grpc.StatusCode.UNAUTHENTICATED
            assert (await stub.Route(req, metadata=bearer(ACME))).model
            del raw["auth"]
            path.write_text(yaml.safe_dump(raw))
            assert not await reload_config(app, str(path))  # auth off needs a restart
            assert (await _code(stub.Route(req)))[0] == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await app.stop(0.5)
