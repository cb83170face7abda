"""Hot reload: SIGHUP swaps a validated config in without dropping a request."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
import yaml

from routecore.cli import main
from routecore.config import load_config
from routecore.server.app import App
from routecore.server.reload import reload_config, reload_on_sighup
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

ONLY = pb.Constraints(allow_models=["gpt-4o"])

def _raw(pinned: str) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(
        resources.files("routecore").joinpath("defaults.yaml").read_text("utf-8"))
    for spec in raw["models"].values():  # every upstream answers in 1 s
        # Long enough to still be in flight when a reload on a loaded machine swaps in.
        spec["sim"] = {"latency_ms": {"p50": 3000, "p95": 3000}}
    raw["models"]["gpt-4o"]["pinned"] = pinned
    return raw


async def _pinned(stub: router_pb2_grpc.RouterStub) -> str:
    models = (await stub.ListModels(pb.ListModelsRequest())).models
    return next(m.model_id for m in models if m.name == "gpt-4o")


async def _shares(stub: router_pb2_grpc.RouterStub) -> dict[str, float]:
    models = (await stub.ListModels(pb.ListModelsRequest())).models
    return {v.name: v.share for m in models if m.name == "gpt-4o" for v in m.versions}


async def test_reload_keeps_in_flight_requests_and_rejects_an_invalid_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A request in flight completes across a SIGHUP reload that changes the pinned version;
    an invalid file is rejected naming the field and the previous config keeps serving; a
    rollout reloaded in shows in `routecore rollout status`, and reloading without it rolls
    back."""
    path = tmp_path / "routecore.yaml"
    path.write_text(yaml.safe_dump(_raw("2024-08-06")))
    app = App.from_config(load_config(path), access_log=False,
                          feedback_db=str(tmp_path / "feedback.db"))
    await app.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    try:
        reload_on_sighup(app, str(path))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            assert await _pinned(stub) == "gpt-4o-2024-08-06"
            calls = [asyncio.ensure_future(stub.Complete(pb.CompleteRequest(
                route=pb.RouteRequest(prompt=f"question {i}?", constraints=ONLY)), timeout=30))
                for i in range(4)]
            await asyncio.sleep(0.1)  # the calls wait on the 3 s upstream
            old = app.completer
            after_swap: list[bool] = []  # per call: did it finish after the swap?
            for c in calls:
                c.add_done_callback(lambda _c: after_swap.append(app.completer is not old))
            path.write_text(yaml.safe_dump(_raw("2024-11-20")))
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(100):
                if app.completer is not old:
                    break
                await asyncio.sleep(0.02)
            assert app.completer is not old
            results = await asyncio.gather(*calls)
            assert all(r.text and r.model == "gpt-4o" for r in results)
            assert any(after_swap)  # in flight across the reload, and answered
            assert await _pinned(stub) == "gpt-4o-2024-11-20"
            res = await stub.Complete(pb.CompleteRequest(
                route=pb.RouteRequest(prompt="after the reload", constraints=ONLY)), timeout=10)
            assert res.text

            path.write_text(yaml.safe_dump(_raw("2099-01-01")))
            with structlog.testing.capture_logs() as logs:
                assert await reload_config(app, str(path)) is False
            (event,) = [e for e in logs if e["event"] == "config_reload_rejected"]
            assert any(p.startswith("models.gpt-4o.pinned: must name a version")
                       for p in event["problems"])
            assert await _pinned(stub) == "gpt-4o-2024-11-20"
            raw = _raw("2024-11-20")
            raw["server"] = {"port": 1}
            path.write_text(yaml.safe_dump(raw))
            assert await reload_config(app, str(path)) is False

            raw = _raw("2024-08-06")  # a staged rollout, then its rollback, by reload
            raw["rollout"] = {"model": "gpt-4o", "to": "2024-11-20", "share": 0.25}
            path.write_text(yaml.safe_dump(raw))
            assert await reload_config(app, str(path)) is True
            assert await _shares(stub) == {"2024-08-06": 0.75, "2024-11-20": 0.25}
            assert await asyncio.to_thread(main, ["rollout", "status", "--addr",
                                                  f"127.0.0.1:{app.port}"]) == 0
            out = capsys.readouterr().out
            assert "gpt-4o\n  2024-08-06" in out and " 75.00%  gpt-4o-2024-08-06 (pinned)" in out
            assert " 25.00%  gpt-4o-2024-11-20 [rolling]\n" in out
            path.write_text(yaml.safe_dump(_raw("2024-08-06")))
            assert await reload_config(app, str(path)) is True
            assert await _shares(stub) == {"2024-08-06": 1.0, "2024-11-20": 0.0}
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        await app.stop(0.5)


def test_restart_only_sections_are_named(tmp_path: Path) -> None:
    """A reload that changes a start-up-bound section names it."""
    from routecore.server.reload import restart_only_changes

    old = load_config(None)
    raw = _raw("2024-08-06")
    raw["state"] = {"backend": "memory"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert [p.split(":")[0] for p in restart_only_changes(old, load_config(path))] == ["state"]
    assert restart_only_changes(old, old) == []


async def test_sighup_is_passed_on_to_the_other_workers(tmp_path: Path) -> None:
    """With --workers, the SIGHUP the first process gets reaches every other worker."""
    path = tmp_path / "routecore.yaml"
    path.write_text(yaml.safe_dump(_raw("2024-08-06")))
    peer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import signal, sys, time\n"
        "signal.signal(signal.SIGHUP, lambda *a: (print('hup', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\ntime.sleep(20)", stdout=asyncio.subprocess.PIPE)
    assert peer.stdout is not None
    assert await peer.stdout.readline() == b"ready\n"
    app = App.from_config(load_config(path), access_log=False,
                          feedback_db=str(tmp_path / "feedback.db"))
    await app.start("127.0.0.1", 0)
    try:
        reload_on_sighup(app, str(path), peers=[peer.pid])
        os.kill(os.getpid(), signal.SIGHUP)
        assert await asyncio.wait_for(peer.stdout.readline(), 10) == b"hup\n"
        assert await asyncio.wait_for(peer.wait(), 10) == 0
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if peer.returncode is None:
            peer.kill()
            await peer.wait()
        await app.stop(0.5)


async def test_a_retired_completer_lets_its_cache_go(tmp_path: Path) -> None:
    """After a reload, the replaced completer's response cache is dropped once no request
    can still run on it (its total_timeout_s), instead of living until stop once per
    reload; the new completer's cache serves."""
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["cache"] = {"exact": {"ttl_s": 3600}}
    raw["resilience"] = {"total_timeout_s": 0.5}
    path = tmp_path / "routecore.yaml"
    path.write_text(yaml.safe_dump(raw))
    app = App.from_config(load_config(path), access_log=False,
                          feedback_db=str(tmp_path / "feedback.db"))
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            req = pb.CompleteRequest(route=pb.RouteRequest(prompt="What is 2+2?"))
            await stub.Complete(req, timeout=10)
            old = app.completer
            assert old is not None and old.cache.answers is not None
            for _ in range(3):
                assert await reload_config(app, str(path)) is True
            assert len(app.retired) == 3
            await asyncio.sleep(2.0)
            assert all(c.cache.answers is None for c in app.retired)
            assert (await stub.Complete(req, timeout=10)).cache_hit == "none"  # a fresh cache
            assert (await stub.Complete(req, timeout=10)).cache_hit == "exact"
    finally:
        await app.stop(0.5)
