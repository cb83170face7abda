"""CompleteBatch and GetBatch over a real gRPC server, submitting through the simulated
provider's OpenAI-compatible /v1/files + /v1/batches over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest_complete import FAST_RESILIENCE, make_config, model

from routecore.calling.providers.sim_server import BATCHES_KEY, SimServer
from routecore.config import Config, load_config
from routecore.routing.batch import MAX_BATCH
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

Stub = router_pb2_grpc.RouterStub

MODELS: dict[str, dict[str, Any]] = {
    "cheap": {**model("cheap", endpoint="up", price=(1.0, 4.0), quality=0.9),
              "price": {"input": 1.0, "output": 4.0, "batch_discount": 0.5}},
    "error_500-x": model("error_500-x", endpoint="up", quality=0.1),
    "nobatch": model("nobatch", endpoint="plain", price=(0.1, 0.1), quality=0.95),
}


def client_config(srv: SimServer, **sections: Any) -> Config:
    cfg = make_config(MODELS, resilience=FAST_RESILIENCE, endpoints={
        "up": {"kind": "openai", "base_url": srv.base_url, "timeout_s": 5,
               "options": {"batch_api": True}},
        "plain": {"kind": "openai", "base_url": srv.base_url, "timeout_s": 5}})
    return replace(cfg, extra={**cfg.extra, **sections}) if sections else cfg


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    eps = {n: {"kind": "simulated"} for n in ("up", "plain")}
    async with SimServer(make_config(MODELS, endpoints=eps), batch_delay_s=0.2) as srv:
        yield srv


@pytest.fixture
async def batch_stub(sim: SimServer, tmp_path: Path) -> AsyncIterator[Stub]:
    app = App.from_config(client_config(sim), access_log=False,
                          feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield Stub(ch)
    await app.stop(0.5)


async def _status(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details() or ""


async def _until_done(stub: Stub, job_id: str, **kw: Any) -> pb.BatchJob:
    deadline = asyncio.get_running_loop().time() + 30  # generous: the machine is shared
    while asyncio.get_running_loop().time() < deadline:
        job = await stub.GetBatch(pb.GetBatchRequest(job_id=job_id), **kw)
        if job.status != "in_progress":
            return job
        await asyncio.sleep(0.05)
    raise AssertionError("the batch did not finish")


def _req(prompt: str, *allow: str, tenant: str = "") -> pb.CompleteRequest:
    return pb.CompleteRequest(route=pb.RouteRequest(
        prompt=prompt, tenant=tenant, constraints=pb.Constraints(allow_models=list(allow))),
        max_output_tokens=64)


async def test_batch_runs_through_the_upstream_batch_api(batch_stub: Stub, sim: SimServer) -> None:
    """A job is in progress, then completed with each answer at the batch price; bad items,
    upstream error lines and models without a batch endpoint get per-item errors."""
    prompts = ["What is the capital of Australia?", "Write a haiku about autumn rain."]
    job = await batch_stub.CompleteBatch(pb.CompleteBatchRequest(requests=[
        _req(prompts[0]), _req(""), _req(prompts[1]), _req("hi", "error_500-x"),
        _req("hi", "nobatch")]))
    assert job.job_id.startswith("batch-") and job.status == "in_progress" and job.total == 5
    early = {i.index: i for i in job.items if i.error_code}
    assert early[1].error_code == "INVALID_ARGUMENT" and early[1].error.startswith("requests[1]")
    assert early[4].error_code == "INVALID_ARGUMENT" and "batch API" in early[4].error
    assert len(sim.app[BATCHES_KEY]._batches) == 1  # one upstream batch for the endpoint

    done = await _until_done(batch_stub, job.job_id)
    assert done.status == "completed" and done.succeeded == 2 and done.failed == 3
    items = {i.index: i for i in done.items}
    assert items[3].error_code == "UNAVAILABLE" and "HTTP 500" in items[3].error
    for i, prompt in ((0, prompts[0]), (2, prompts[1])):
        it = items[i]
        assert it.model == "cheap" and it.text and it.usage.output_tokens > 0 and it.request_id
        assert it.cost_usd == pytest.approx(it.standard_cost_usd * 0.5)
        single = await batch_stub.Complete(_req(prompt, "cheap"))
        assert it.text == single.text  # the same answer as an immediate Complete
        assert it.standard_cost_usd == pytest.approx(single.cost_usd)
    assert done.cost_usd == pytest.approx(items[0].cost_usd + items[2].cost_usd)
    assert done.cost_usd == pytest.approx(done.standard_cost_usd * 0.5)


async def test_hostile_batches(batch_stub: Stub) -> None:
    """Empty, oversized, cascade items, bad cache options and unknown or garbage job ids get
    clear errors naming the item's field."""
    code, msg = await _status(batch_stub.CompleteBatch(pb.CompleteBatchRequest()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "must not be empty" in msg
    code, msg = await _status(batch_stub.CompleteBatch(pb.CompleteBatchRequest(
        requests=[_req("hi")] * (MAX_BATCH + 1))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and f"limit of {MAX_BATCH}" in msg
    code, msg = await _status(batch_stub.CompleteBatch(pb.CompleteBatchRequest(requests=[
        pb.CompleteRequest(route=pb.RouteRequest(prompt="hi"), cascade=True)])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "requests[0]" in msg
    for item, field in ((pb.CompleteRequest(route=pb.RouteRequest(prompt="hi"), cache="nope"),
                         "requests[1].cache:"),
                        (pb.CompleteRequest(route=pb.RouteRequest(prompt="hi"),
                                            cache_max_age_s=-5), "requests[1].cache_max_age_s:")):
        code, msg = await _status(batch_stub.CompleteBatch(pb.CompleteBatchRequest(
            requests=[_req("hi"), item])))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith(field), msg
    for bad in ("batch-" + "0" * 32, "", "x" * 10_000, "../../etc/passwd"):
        code, msg = await _status(batch_stub.GetBatch(pb.GetBatchRequest(job_id=bad)))
        assert code == grpc.StatusCode.NOT_FOUND and len(msg) < 400


async def test_jobs_belong_to_their_tenant(sim: SimServer, tmp_path: Path) -> None:
    """Another tenant's GetBatch on a job id is NOT_FOUND with the message an unknown id gets."""
    from test_auth_rpc import ACME, GLOBEX, _sha, bearer

    cfg = client_config(sim, auth={"keys": [
        {"id": "acme-1", "sha256": _sha(ACME), "tenant": "acme"},
        {"id": "globex-1", "sha256": _sha(GLOBEX), "tenant": "globex"}]})
    app = App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = Stub(ch)
            job = await stub.CompleteBatch(pb.CompleteBatchRequest(requests=[_req("hi")]),
                                           metadata=bearer(ACME))
            stolen = await _status(stub.GetBatch(pb.GetBatchRequest(job_id=job.job_id),
                                                 metadata=bearer(GLOBEX)))
            never = await _status(stub.GetBatch(pb.GetBatchRequest(job_id="batch-nope"),
                                                metadata=bearer(GLOBEX)))
            assert stolen[0] == never[0] == grpc.StatusCode.NOT_FOUND
            assert stolen[1].replace(job.job_id, "ID") == never[1].replace("batch-nope", "ID")
            done = await _until_done(stub, job.job_id, metadata=bearer(ACME))
            assert done.status == "completed" and done.items[0].text
    finally:
        await app.stop(0.5)


async def test_builtin_config_batches_in_process(tmp_path: Path) -> None:
    """With no config (every endpoint the in-process simulated provider) CompleteBatch works."""
    app = App.from_config(load_config(None), access_log=False, feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = Stub(ch)
            job = await stub.CompleteBatch(pb.CompleteBatchRequest(requests=[
                _req("Translate 'good night' into French."), _req("Prove that 17 is prime.")]))
            done = await _until_done(stub, job.job_id)
            assert done.status == "completed" and done.succeeded == 2
            assert all(i.text and i.cost_usd > 0 for i in done.items)
    finally:
        await app.stop(0.5)


async def test_batch_items_are_held_and_charged_on_the_budget(sim: SimServer,
                                                               tmp_path: Path) -> None:
    """Items past the tenant's cap fail with RESOURCE_EXHAUSTED at submit; the others are
    charged their real batch cost once done, and nothing stays reserved."""
    cfg = client_config(sim, budgets={"tenants": {"acme": {"usd_per_day": 0.0003}}})
    app = App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = Stub(ch)
            reqs = [_req(f"Question number {n}: what is {n} squared?", "cheap", tenant="acme")
                    for n in range(4)]
            job = await stub.CompleteBatch(pb.CompleteBatchRequest(requests=reqs))
            refused = [i for i in job.items if i.error_code == "RESOURCE_EXHAUSTED"]
            assert refused and len(refused) < 4 and "budget exhausted" in refused[0].error
            done = await _until_done(stub, job.job_id)
            assert done.succeeded == 4 - len(refused)
            (w,) = (await stub.GetBudget(pb.BudgetRequest(tenant="acme"))).windows
            assert w.spent == pytest.approx(done.cost_usd, abs=1e-9) and w.reserved == 0
    finally:
        await app.stop(0.5)


async def test_a_reload_changes_new_jobs_not_submitted_ones(sim: SimServer,
                                                            tmp_path: Path) -> None:
    """After a reload, new jobs use the new config (here: a newly batch-capable endpoint),
    while a job submitted before it completes through its own upstream at its own prices."""
    from routecore.calling.completion import Completer
    from routecore.routing.router import Router

    app = App.from_config(client_config(sim), access_log=False,
                          feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = Stub(ch)
            before = await stub.CompleteBatch(pb.CompleteBatchRequest(
                requests=[_req("What is the capital of Australia?", "cheap")]))
            dearer = {**MODELS, "cheap": {**MODELS["cheap"], "price": {
                "input": 10.0, "output": 40.0, "batch_discount": 0.5}}}
            new = make_config(dearer, resilience=FAST_RESILIENCE, endpoints={
                e: {"kind": "openai", "base_url": sim.base_url, "timeout_s": 5,
                    "options": {"batch_api": True}} for e in ("up", "plain")})
            router = Router.from_config(new)
            app.swap(router, Completer(new, router, budgets=app.budgets, state=app.state))
            after = await stub.CompleteBatch(pb.CompleteBatchRequest(
                requests=[_req("What is the capital of Australia?", "nobatch")]))
            assert not after.items[0].error_code, after.items[0].error
            old, fresh = await _until_done(stub, before.job_id), await _until_done(
                stub, after.job_id)
        assert old.status == fresh.status == "completed"
        it = old.items[0]
        assert it.cost_usd == pytest.approx(  # the prices it was submitted at
            (it.usage.input_tokens * 1.0 + it.usage.output_tokens * 4.0) / 1e6 * 0.5)
        assert fresh.items[0].model == "nobatch"
    finally:
        await app.stop(0.5)


async def test_a_job_nobody_polls_is_still_charged(sim: SimServer, tmp_path: Path) -> None:
    """The process polls unfinished jobs itself: a caller that submits and never calls
    GetBatch is charged each answer's batch cost (the hold settles) instead of the hold
    expiring uncharged; GetBatch later shows the same cost."""
    cfg = client_config(sim, budgets={"tenants": {"acme": {"usd_per_day": 1.0}}})
    app = App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / "f.db"))
    await app.start("127.0.0.1", 0)
    assert app.servicer is not None
    app.servicer.batches.settle_s = 0.2
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = Stub(ch)
            reqs = [_req(f"Question number {n}: what is {n} squared?", "cheap", tenant="acme")
                    for n in range(2)]
            job = await stub.CompleteBatch(pb.CompleteBatchRequest(requests=reqs))
            assert job.status == "in_progress"
            for _ in range(100):
                (w,) = (await stub.GetBudget(pb.BudgetRequest(tenant="acme"))).windows
                if w.reserved == 0:
                    break
                await asyncio.sleep(0.1)
            assert w.reserved == 0 and w.spent > 0
            done = await stub.GetBatch(pb.GetBatchRequest(job_id=job.job_id))
            assert done.status == "completed" and done.cost_usd == pytest.approx(w.spent)
    finally:
        await app.stop(0.5)


async def test_batch_items_are_audited_when_the_job_finishes(sim: SimServer,
                                                            tmp_path: Path) -> None:
    """Each CompleteBatch item gets one audit record once its job is done: its tenant,
    model, tokens and batch-price cost, or its error; `audit summary` counts the spend."""
    from routecore.observe.store import documents, summary

    app = App.from_config(client_config(sim), access_log=False,
                          feedback_db=str(tmp_path / "f.db"))
    app.audit_db = str(tmp_path / "audit.db")
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = Stub(ch)
            reqs = [_req(p, tenant="acme") for p in (
                "What is the capital of Australia?", "", "Write a haiku about autumn rain.")]
            job = await stub.CompleteBatch(pb.CompleteBatchRequest(requests=reqs))
            assert app.observer is not None and app.observer.recorder is not None
            await app.observer.recorder.flush()
            assert not [d async for d in documents(str(tmp_path / "audit.db"))]  # not yet
            done = await _until_done(stub, job.job_id)
            await _until_done(stub, job.job_id)  # a second poll writes nothing more
        await app.observer.recorder.flush()
    finally:
        await app.stop(0.5)
    docs = [d async for d in documents(str(tmp_path / "audit.db"))]
    assert [d["rpc"] for d in docs] == ["CompleteBatch"] * 3
    assert [d["status"] for d in docs] == ["OK", "INVALID_ARGUMENT", "OK"]
    assert {d["tenant"] for d in docs} == {"acme"}
    items = {i.index: i for i in done.items}
    for d in docs:
        it = items[d["features"]["batch"]["index"]]
        assert d["features"]["batch"]["job_id"] == job.job_id
        assert d["request_id"] == it.request_id and d["model"] == it.model
        assert d["cost_usd"] == pytest.approx(it.cost_usd)
        assert d["output_tokens"] == it.usage.output_tokens
    assert docs[1]["error"].startswith("requests[1]")
    rows = await summary(str(tmp_path / "audit.db"), tenant="acme")
    assert sum(r["spend_usd"] for r in rows) == pytest.approx(done.cost_usd)
