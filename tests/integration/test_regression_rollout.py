"""Quality regressions end to end over gRPC: a staged rollout of a version that answers
badly is detected from Feedback scores (or from its failing calls) and rolled back by
itself, live; the alert shows in the log, /metrics, the audit summary, `rollout status`,
ListModels, and reaches a webhook (retried on 500s, never holding up a request)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
import yaml
from aiohttp import web

from routecore.calling.providers.simulated import REFUSAL
from routecore.cli import main
from routecore.config import load_config
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

OLD, NEW = "2024-08-06", "2024-11-20"
ONLY = pb.Constraints(allow_models=["gpt-4o"])
# Requests until the rollback, at most (see test_feedback_regression_rolls_back...): the
# pinned version needs `baseline` (20) scores, the new one `min_samples` (10), each on
# about half of the traffic, plus the writer's 50 ms flush while traffic goes on.
MAX_REQUESTS = 160


def write_config(path: Path, new_model_id: str, *, share: float = 0.5,
                 alerts: dict[str, Any] | None = None, **extra: Any) -> Path:
    raw: dict[str, Any] = yaml.safe_load(
        resources.files("routecore").joinpath("defaults.yaml").read_text("utf-8"))
    for name, version in raw["models"]["gpt-4o"]["versions"].items():
        if str(name) == NEW:  # YAML reads 2024-11-20 as a date
            version["model_id"] = new_model_id
    raw["rollout"] = {"model": "gpt-4o", "to": NEW, "share": share}
    raw["audit"] = {"path": str(path.parent / "audit.db"), "flush_interval_s": 0.05}
    raw["alerts"] = {"baseline": 20, "min_samples": 10, **(alerts or {})}
    raw.update(extra)
    path.write_text(yaml.safe_dump(raw))
    return path


async def start(path: Path, metrics: bool = False) -> App:
    app = App.from_config(load_config(path), access_log=False,
                          feedback_db=str(path.parent / "feedback.db"))
    app.metrics_port = 0 if metrics else None
    await app.start("127.0.0.1", 0)
    return app


async def versions(stub: router_pb2_grpc.RouterStub) -> dict[str, pb.ModelVersionInfo]:
    models = (await stub.ListModels(pb.ListModelsRequest())).models
    return {v.name: v for m in models if m.name == "gpt-4o" for v in m.versions}


async def one(stub: router_pb2_grpc.RouterStub, i: int,
              feedback: bool = True) -> pb.CompleteResponse | None:
    """A Complete for user i, then a Feedback: 0 for a refusal, else 1. None when it failed."""
    try:
        res = await stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(
            prompt=f"Summarize the key points of meeting number {i}.", user=f"user-{i}",
            constraints=ONLY)), timeout=10)
    except grpc.aio.AioRpcError:
        return None
    if feedback:
        await stub.Feedback(pb.FeedbackRequest(request_id=res.request_id, model=res.model,
                                               score=0.0 if res.text == REFUSAL else 1.0))
    return res


async def until_stopped(stub: router_pb2_grpc.RouterStub, limit: int,
                        feedback: bool = True, seen: list[str] | None = None) -> int:
    """Traffic in rounds of 8 concurrent users until the new version is rolled back (or held);
    returns how many requests it took (`seen` gets the deployment that answered each)."""
    sent = 0
    while sent < limit:
        done = await asyncio.gather(*(one(stub, sent + j, feedback) for j in range(8)))
        if seen is not None:
            seen += [r.attempts[-1].deployment for r in done if r is not None]
        sent += 8
        if (await versions(stub))[NEW].rollout_state in ("rolled_back", "held"):
            return sent
    for _ in range(40):  # the last round's signals may still be in the writer's queue
        await asyncio.sleep(0.05)
        if (await versions(stub))[NEW].rollout_state in ("rolled_back", "held"):
            return sent
    raise AssertionError(f"no rollback after {limit} requests")


async def test_feedback_regression_rolls_back_the_rollout_by_itself(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Half of the users get a new version that refuses everything; their Feedback scores
    drop, the detector fires within MAX_REQUESTS requests, and the rollout rolls back live:
    share 0 in ListModels and `rollout status`, every user back on the pinned version, the
    quality_regression log event, the metrics, the Alert row in `audit summary`; a Reload
    starts the rollout again and acknowledges the alarm."""
    path = write_config(tmp_path / "routecore.yaml", "gpt-4o-2024-11-20-refuse")
    app = await start(path, metrics=True)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            before = await versions(stub)
            assert before[NEW].share == 0.5 and before[NEW].rollout_state == "rolling"
            seen: list[str] = []
            with structlog.testing.capture_logs() as logs:
                sent = await until_stopped(stub, MAX_REQUESTS, seen=seen)
            print(f"rolled back after {sent} requests")
            # The rollout moved traffic: both versions answered, about half each.
            on_new = sum(d.endswith("gpt-4o-2024-11-20-refuse") for d in seen)
            assert 0.3 * len(seen) < on_new < 0.7 * len(seen)
            after = await versions(stub)
            assert after[NEW].share == 0.0 and after[OLD].share == 1.0
            assert after[NEW].rollout_state == "rolled_back"
            assert "feedback regression in summarization" in after[NEW].rollout_reason
            (event,) = [e for e in logs if e["event"] == "quality_regression"]
            assert (event["model"], event["version"], event["kind"], event["action"]) == \
                ("gpt-4o", NEW, "feedback", "rolled_back")
            assert event["recent_mean"] < 0.2 < event["baseline_mean"]
            assert [e for e in logs if e["event"] == "rollout_rolled_back"]

            # Everyone, the users who had the new version included, is on the pinned one.
            results = await asyncio.gather(*(one(stub, i, feedback=False) for i in range(40)))
            assert all(r is not None and r.attempts[-1].deployment.endswith(f"gpt-4o-{OLD}")
                       for r in results)
            assert sum(r is not None and r.text == REFUSAL for r in results) < 10

            assert await asyncio.to_thread(main, ["rollout", "status", "--addr",
                                                  f"127.0.0.1:{app.port}"]) == 0
            out = capsys.readouterr().out
            assert f"  {NEW}" in out and "0.00%" in out and "[rolled_back]" in out

            assert app.observer is not None and app.observer.server is not None
            text = await asyncio.to_thread(_scrape, app.observer.server.port)
            assert ('routecore_quality_regression{category="summarization",model="gpt-4o",'
                    f'version="{NEW}"}} 1.0') in text
            assert f'routecore_rollout_rollbacks_total{{model="gpt-4o",version="{NEW}"}} 1.0' \
                in text

            reloaded = await stub.Reload(pb.ReloadRequest())
            assert reloaded.applied and reloaded.alarms_cleared == 1
            assert reloaded.rollout == f"gpt-4o -> {NEW} at 50.0% (rolling)"
            again = await versions(stub)
            assert again[NEW].share == 0.5 and again[NEW].rollout_state == "rolling"
            text = await asyncio.to_thread(_scrape, app.observer.server.port)
            assert ('routecore_quality_regression{category="summarization",model="gpt-4o",'
                    f'version="{NEW}"}} 0.0') in text
    finally:
        await app.stop(0.5)
    capsys.readouterr()
    db = str(tmp_path / "audit.db")
    assert await asyncio.to_thread(main, ["audit", "summary", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "quality regressions (1):" in out
    assert f"gpt-4o@{NEW} summarization feedback:" in out and "action: rolled_back" in out
    assert await asyncio.to_thread(main, ["audit", "summary", "--db", db, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sum(r["alerts"] for r in rows) == 1
    assert sum(r["requests"] for r in rows) >= sent  # alerts are not counted as requests


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


class Hook:
    """A local webhook receiver: answers 500 to the first `fail` posts, then waits for
    `release` before answering 200 to the next one."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.bodies: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        if len(self.bodies) <= self.fail:
            return web.Response(status=500, text="try again")
        self.waiting.set()
        await self.release.wait()
        return web.Response(status=200, text="ok")


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    h = Hook(fail=2)
    web_app = web.Application()
    web_app.router.add_post("/alerts", h.handle)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    h.url = f"http://127.0.0.1:{port}/alerts"
    yield h
    h.release.set()
    await runner.cleanup()


async def test_failing_version_rolls_back_and_the_webhook_is_retried_without_blocking(
        tmp_path: Path, hook: Hook) -> None:
    """A new version whose every call fails (error_500, no feedback needed) is rolled back from
    the error signals alone; the webhook gets the alert after two 500s (three tries), and
    while its delivery hangs, requests keep being answered."""
    path = write_config(tmp_path / "routecore.yaml", "gpt-4o-2024-11-20-error_500",
                        alerts={"webhook_url": hook.url, "webhook_retries": 4})
    app = await start(path)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            sent = await until_stopped(stub, MAX_REQUESTS, feedback=False)
            print(f"rolled back after {sent} requests")
            assert (await versions(stub))[NEW].rollout_state == "rolled_back"
            await asyncio.wait_for(hook.waiting.wait(), 10)
            # The third try is held open by the receiver: serving goes on meanwhile.
            results = await asyncio.gather(*(one(stub, i, feedback=False) for i in range(16)))
            assert all(r is not None and r.text for r in results)
            assert not hook.release.is_set()
            hook.release.set()
            assert app.alerting is not None and app.alerting.webhook is not None
            for _ in range(100):
                if app.alerting.webhook.delivered:
                    break
                await asyncio.sleep(0.02)
            assert app.alerting.webhook.delivered == 1 and app.alerting.webhook.tries == 3
    finally:
        await app.stop(0.5)
    assert len(hook.bodies) == 3 and all(b == hook.bodies[0] for b in hook.bodies)
    body = hook.bodies[0]
    assert (body["event"], body["model"], body["version"], body["kind"], body["action"]) == \
        ("quality_regression", "gpt-4o", NEW, "error", "rolled_back")


async def test_held_instead_of_rolled_back(tmp_path: Path) -> None:
    """With alerts.rollback false, a regression holds the rollout at its share (no more
    steps) instead of rolling it back; a webhook nobody answers only logs its failure."""
    path = write_config(tmp_path / "routecore.yaml", "gpt-4o-2024-11-20-error_500",
                        alerts={"rollback": False, "webhook_url": "http://127.0.0.1:9/x",
                                "webhook_retries": 1, "webhook_timeout_s": 0.5})
    app = await start(path)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            with structlog.testing.capture_logs() as logs:
                await until_stopped(stub, MAX_REQUESTS, feedback=False)
                v = (await versions(stub))[NEW]
                assert (v.rollout_state, v.share) == ("held", 0.5)
                assert app.alerting is not None and app.alerting.webhook is not None
                for _ in range(200):
                    if app.alerting.webhook.failed:
                        break
                    await asyncio.sleep(0.02)
            assert app.alerting.webhook.failed == 1
            assert [e for e in logs if e["event"] == "alert_webhook_failed"]
    finally:
        await app.stop(0.5)


async def test_judge_scores_roll_back_a_rollout(tmp_path: Path) -> None:
    """With ensembles judged by a judge model, the judge's grades of the new version's
    answers (it refuses everything) drop against the pinned version's, and the rollout rolls
    back on the judge signal alone: no Feedback is sent."""
    path = write_config(tmp_path / "routecore.yaml", "gpt-4o-2024-11-20-refuse",
                        ensemble={"selection": "judge", "judge_model": "gpt-4.1"})
    app = await start(path)
    pair = pb.Constraints(allow_models=["gpt-4o", "gpt-4.1"])

    async def judged(stub: router_pb2_grpc.RouterStub, i: int) -> None:
        res = await stub.Complete(pb.CompleteRequest(route=pb.RouteRequest(
            prompt=f"Summarize the key points of meeting number {i}.", user=f"user-{i}",
            constraints=pair), ensemble_size=2), timeout=10)
        assert any("judge" in s.reason for s in res.cascade_steps)

    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            with structlog.testing.capture_logs() as logs:
                for sent in range(0, MAX_REQUESTS, 8):
                    await asyncio.gather(*(judged(stub, sent + j) for j in range(8)))
                    if (await versions(stub))[NEW].rollout_state == "rolled_back":
                        break
                for _ in range(40):
                    if (await versions(stub))[NEW].rollout_state == "rolled_back":
                        break
                    await asyncio.sleep(0.05)
            assert (await versions(stub))[NEW].rollout_state == "rolled_back"
            kinds = {e["kind"] for e in logs if e["event"] == "quality_regression"
                     and e["version"] == NEW}
            assert "judge" in kinds and "feedback" not in kinds
    finally:
        await app.stop(0.5)
