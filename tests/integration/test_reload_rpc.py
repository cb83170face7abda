"""The admin Reload RPC and `routecore reload`: a valid file is swapped in and reported, an
invalid one is FAILED_PRECONDITION naming the field while the old config keeps serving, only
admin keys may call it with auth on, and no request is dropped by reloads under traffic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from routecore.cli import main
from routecore.config import load_config
from routecore.server.app import App
from routecore.server.identity import new_key
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

ONLY = pb.Constraints(allow_models=["gpt-4o"])
FP = grpc.StatusCode.FAILED_PRECONDITION


def raw_config(pinned: str = "2024-08-06", latency_ms: float = 0.0) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(
        resources.files("routecore").joinpath("defaults.yaml").read_text("utf-8"))
    if latency_ms:
        for spec in raw["models"].values():
            spec["sim"] = {"latency_ms": {"p50": latency_ms, "p95": latency_ms}}
    raw["models"]["gpt-4o"]["pinned"] = pinned
    return raw


async def pinned(stub: router_pb2_grpc.RouterStub, **kw: Any) -> str:
    models = (await stub.ListModels(pb.ListModelsRequest(), **kw)).models
    return next(m.version for m in models if m.name == "gpt-4o")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[App, Path, router_pb2_grpc.RouterStub]]:
    path = tmp_path / "routecore.yaml"
    path.write_text(yaml.safe_dump(raw_config(latency_ms=50)))
    app = App.from_config(load_config(path), access_log=False,
                          feedback_db=str(tmp_path / "feedback.db"))
    await app.start("127.0.0.1", 0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield app, path, router_pb2_grpc.RouterStub(ch)
    await app.stop(0.5)


async def test_reload_swaps_a_valid_file_and_reports_it(
        served: tuple[App, Path, router_pb2_grpc.RouterStub]) -> None:
    """A dry run validates without swapping; a reload swaps the new pinned version in and
    answers with the file, router version, model count and rollout."""
    app, path, stub = served
    raw = raw_config("2024-11-20", latency_ms=50)
    raw["rollout"] = {"model": "gpt-4o", "to": "2024-08-06", "share": 0.2}
    path.write_text(yaml.safe_dump(raw))
    dry = await stub.Reload(pb.ReloadRequest(dry_run=True))
    assert not dry.applied and dry.config_path == str(path)
    assert await pinned(stub) == "2024-08-06"
    done = await stub.Reload(pb.ReloadRequest())
    assert done.applied and done.models == len(app.router.registry) and done.models > 10
    assert done.router_version == app.router.version == raw["router_version"]
    assert done.rollout == "gpt-4o -> 2024-08-06 at 20.0% (rolling)"
    assert done.peers_signalled == 0 and done.alarms_cleared == 0
    assert await pinned(stub) == "2024-11-20"


@pytest.mark.parametrize(("change", "problem"), [
    (lambda raw: raw["models"]["gpt-4o"].update(pinned="2099-01-01"),
     "models.gpt-4o.pinned: must name a version"),
    (lambda raw: raw.update(rollout={"model": "gpt-4o", "to": "nope", "share": 0.1}),
     "rollout.to: must name a version of gpt-4o"),
    (lambda raw: raw.update(server={"port": 1}), "server: changed, which needs a restart"),
    (lambda raw: raw.update(alerts={"threshold": 3}), "alerts: changed, which needs a restart"),
    (lambda raw: raw.update(resilience={"retry": {"max_attempts": -1}}),
     "resilience.retry.max_attempts: must be >= 0"),
    (lambda raw: raw.update(rollout={"model": "gpt-4o", "to": "2024-11-20", "share": 7}),
     "rollout.share: must be <= 1"),
])
async def test_an_invalid_file_is_rejected_naming_the_field(
        served: tuple[App, Path, router_pb2_grpc.RouterStub], change: Any, problem: str) -> None:
    """FAILED_PRECONDITION whose message names the bad field; the old config keeps serving."""
    app, path, stub = served
    old = app.router
    raw = raw_config("2024-11-20")
    change(raw)
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Reload(pb.ReloadRequest())
    assert err.value.code() == FP and problem in (err.value.details() or "")
    assert app.router is old and await pinned(stub) == "2024-08-06"
    res = await stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(
        prompt="still serving?", constraints=ONLY)), timeout=10)
    assert res.text


async def test_hostile_files_are_rejected(
        served: tuple[App, Path, router_pb2_grpc.RouterStub]) -> None:
    """Garbage YAML, a YAML list, a huge file and a missing file are each FAILED_PRECONDITION
    saying what is wrong; the old config keeps serving."""
    app, path, stub = served
    old = app.router
    for text, problem in (("models: [unclosed", "invalid YAML"),
                          ("- a\n- b\n", "must be a mapping"),
                          ("router_version: " + "x" * 2_000_000 + "\n", "")):
        path.write_text(text)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Reload(pb.ReloadRequest())
        assert err.value.code() == FP and problem in (err.value.details() or "")
        assert len(err.value.details() or "") < 20_000
    path.unlink()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Reload(pb.ReloadRequest())
    assert err.value.code() == FP and "cannot read" in (err.value.details() or "")
    assert app.router is old


async def test_no_request_is_dropped_by_reloads_under_traffic(
        served: tuple[App, Path, router_pb2_grpc.RouterStub]) -> None:
    """96 Completes in flight (50 ms upstream) across eight concurrent reloads that flip the
    pinned version: every request is answered and every reload applied, one at a time."""
    app, path, stub = served

    async def call(i: int) -> pb.CompleteResponse:
        return await stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(
            prompt=f"question {i}?", user=f"u{i}", constraints=ONLY)), timeout=20)

    async def reload(i: int) -> pb.ReloadResponse:
        await asyncio.sleep(0.01 * i)
        path.write_text(yaml.safe_dump(raw_config("2024-11-20" if i % 2 else "2024-08-06",
                                                  latency_ms=50)))
        return await stub.Reload(pb.ReloadRequest(), timeout=30)

    first = app.completer
    calls = [asyncio.ensure_future(call(i)) for i in range(96)]
    reloads = await asyncio.gather(*(reload(i) for i in range(8)))
    results = await asyncio.gather(*calls)
    assert all(r.applied for r in reloads)
    assert all(r.text and r.model == "gpt-4o" for r in results)
    assert app.completer is not first and len(app.retired) == 8
    served_ids = {r.attempts[-1].deployment.rsplit("/", 1)[1] for r in results}
    assert served_ids <= {"gpt-4o-2024-08-06", "gpt-4o-2024-11-20"}


async def test_a_server_without_a_config_file_says_so(tmp_path: Path) -> None:
    """Started on the built-in defaults, there is nothing to re-read: FAILED_PRECONDITION."""
    app = App.from_config(load_config(None), access_log=False,
                          feedback_db=str(tmp_path / "feedback.db"))
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await router_pb2_grpc.RouterStub(ch).Reload(pb.ReloadRequest())
        assert err.value.code() == FP
        assert "not a file: there is nothing to re-read" in (err.value.details() or "")
    finally:
        await app.stop(0.5)


async def test_only_admin_keys_may_reload(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """With auth on: no key is UNAUTHENTICATED, a valid non-admin key PERMISSION_DENIED naming
    the key, an admin key (of any tenant) reloads; `routecore reload --api-key` does too, and
    a revoked admin key stops working after the reload that removes it."""
    admin, admin_sha = new_key()
    user, user_sha = new_key()
    spare, spare_sha = new_key()
    raw = raw_config()
    keys = [{"id": "ops", "sha256": admin_sha, "tenant": "ops", "admin": True},
            {"id": "app", "sha256": user_sha, "tenant": "acme"},
            {"id": "ops2", "sha256": spare_sha, "tenant": "ops", "admin": True}]
    raw["auth"] = {"keys": keys}
    path = tmp_path / "routecore.yaml"
    path.write_text(yaml.safe_dump(raw))
    app = App.from_config(load_config(path), access_log=False,
                          feedback_db=str(tmp_path / "feedback.db"))
    await app.start("127.0.0.1", 0)
    addr = f"127.0.0.1:{app.port}"
    try:
        async with grpc.aio.insecure_channel(addr) as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            for metadata, code, words in (
                    ((), grpc.StatusCode.UNAUTHENTICATED, "authorization: missing"),
                    ((("authorization", "Bearer " + "x" * 2000),),
                     grpc.StatusCode.UNAUTHENTICATED, "longer than"),
                    ((("authorization", f"Bearer {user}"),), grpc.StatusCode.PERMISSION_DENIED,
                     "reload: API key app is not an admin key")):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.Reload(pb.ReloadRequest(), metadata=metadata)
                assert err.value.code() == code and words in (err.value.details() or "")
            ok = await stub.Reload(pb.ReloadRequest(),
                                   metadata=(("authorization", f"Bearer {admin}"),))
            assert ok.applied
            capsys.readouterr()
            assert await asyncio.to_thread(main, ["reload", "--addr", addr,
                                                  "--api-key", spare]) == 0
            assert f"reloaded: router {raw['router_version']}" in capsys.readouterr().out
            assert await asyncio.to_thread(main, ["reload", "--addr", addr,
                                                  "--api-key", user]) == 2
            assert "PERMISSION_DENIED" in capsys.readouterr().err

            raw["auth"] = {"keys": keys[:2]}  # revoke ops2
            path.write_text(yaml.safe_dump(raw))
            await stub.Reload(pb.ReloadRequest(), metadata=(("authorization", f"Bearer {admin}"),))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Reload(pb.ReloadRequest(),
                                  metadata=(("authorization", f"Bearer {spare}"),))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await app.stop(0.5)


async def test_reload_cli(served: tuple[App, Path, router_pb2_grpc.RouterStub],
                          capsys: pytest.CaptureFixture[str]) -> None:
    """`routecore reload` prints the outcome (or JSON), and an invalid file's field with exit
    code 2; `--dry-run` swaps nothing."""
    app, path, _stub = served
    addr = f"127.0.0.1:{app.port}"
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["reload", "--addr", addr, "--dry-run"]) == 0
    assert "valid (dry run, nothing swapped)" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["reload", "--addr", addr, "--json"]) == 0
    out = capsys.readouterr().out
    assert '"applied": true' in out and '"models": ' in out
    path.write_text(yaml.safe_dump(raw_config("2099-01-01")))
    assert await asyncio.to_thread(main, ["reload", "--addr", addr]) == 2
    err = capsys.readouterr().err
    assert "FAILED_PRECONDITION" in err and "models.gpt-4o.pinned" in err


async def test_reload_rpc_passes_sighup_to_the_other_workers(
        served: tuple[App, Path, router_pb2_grpc.RouterStub]) -> None:
    """With --workers, the worker that answers Reload reloads itself and sends SIGHUP to the
    others (a dry run or a rejected file sends nothing)."""
    import sys

    app, path, stub = served
    peer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import signal, sys, time\n"
        "signal.signal(signal.SIGHUP, lambda *a: (print('hup', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\ntime.sleep(20)", stdout=asyncio.subprocess.PIPE)
    assert peer.stdout is not None
    try:
        assert await peer.stdout.readline() == b"ready\n"
        assert app.reloader is not None
        app.reloader.peers = (peer.pid,)
        assert (await stub.Reload(pb.ReloadRequest(dry_run=True))).peers_signalled == 0
        path.write_text(yaml.safe_dump(raw_config("2099-01-01")))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Reload(pb.ReloadRequest())
        with pytest.raises(TimeoutError):  # no SIGHUP went out: the peer says nothing
            await asyncio.wait_for(peer.stdout.readline(), 0.5)
        path.write_text(yaml.safe_dump(raw_config("2024-11-20")))
        assert (await stub.Reload(pb.ReloadRequest())).peers_signalled == 1
        assert await asyncio.wait_for(peer.stdout.readline(), 10) == b"hup\n"
        assert await asyncio.wait_for(peer.wait(), 10) == 0
    finally:
        if peer.returncode is None:
            peer.kill()
            await peer.wait()
