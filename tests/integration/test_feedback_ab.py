"""Feedback and A/B over a real server: stored durably, learned online, variants recorded."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from routecore.config import parse_config
from routecore.learned.ab import ab_report
from routecore.learned.train import train
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

MODELS = {"big": 1e-3, "mid": 3e-4, "small": 1e-4}
TRIVIA = "Who was the president of country number {i}? Answer with the name only."
CODE = "Write a python function def f{i}(xs): return the sorted list without duplicates"


def _write_data(path: Path) -> None:
    """Two task families: `small` matches `big` on trivia and fails at code."""
    rng = random.Random(0)
    with path.open("w") as f:
        for i in range(160):
            code = i % 2 == 1
            q = {"big": 0.9, "mid": 0.6, "small": 0.1} if code else {"big": 0.8, "mid": 0.8,
                                                                     "small": 0.8}
            f.write(json.dumps({
                "id": f"r{i}", "prompt": (CODE if code else TRIVIA).format(i=i),
                "source": "code" if code else "trivia",
                "scores": {m: float(rng.random() < p) for m, p in q.items()},
                "costs": dict(MODELS)}) + "\n")


def _config(artifact: Path, db: Path, ab: dict[str, Any] | None = None) -> Any:
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    template = raw["models"]["gpt-4o-mini"]
    raw["models"] = {m: {**template, "provider": "sim", "model_id": m, "fallbacks": [],
                         "deployments": [{"endpoint": "openai"}]} for m in MODELS}
    raw["routing"] = {"default_strategy": "learned",
                      "learned": {"artifact": str(artifact), "willingness_to_pay": 0.5}}
    raw["classifier"]["feature_dim"] = 256
    raw["feedback"] = {"path": str(db)}
    if ab:
        raw["ab"] = ab
    return parse_config(raw)


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    data = tmp_path / "train.jsonl"
    _write_data(data)
    out = tmp_path / "artifact"
    train([data], out, dim=256, progress=False)
    return out


async def _app(config: Any) -> App:
    app = App.from_config(config, access_log=False)
    await app.start("127.0.0.1", 0)
    return app


@pytest.fixture
async def learned_app(artifact: Path, tmp_path: Path) -> AsyncIterator[App]:
    app = await _app(_config(artifact, tmp_path / "fb.db"))
    yield app
    await app.stop(0.5)


async def test_feedback_changes_later_decisions(learned_app: App, tmp_path: Path) -> None:
    """Bad scores for the chosen model, sent by request id, move later decisions elsewhere."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{learned_app.port}") as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        prompt = TRIVIA.format(i=1001)
        first = await stub.Route(pb.RouteRequest(prompt=prompt))
        assert first.model == "small" and first.strategy == "learned"
        for i in range(60):
            # A judge scored `small` on a recent request (the decision may already have moved).
            d = await stub.Route(pb.RouteRequest(prompt=TRIVIA.format(i=2000 + i)))
            res = await stub.Feedback(pb.FeedbackRequest(request_id=d.request_id, model="small",
                                                         score=0.0, source="judge"))
            assert res.learned and res.feedback_id
        after = await stub.Route(pb.RouteRequest(prompt=prompt))
    assert after.model != "small"
    rows = sqlite3.connect(tmp_path / "fb.db").execute(
        "SELECT model, score, source FROM feedback").fetchall()
    assert len(rows) == 60 and set(rows) == {("small", 0.0, "judge")}


async def test_feedback_with_prompt_and_bad_input(learned_app: App) -> None:
    """Feedback by prompt works; bad score, unknown model or unknown request id get clear statuses."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{learned_app.port}") as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        ok = await stub.Feedback(pb.FeedbackRequest(prompt="Who won?", model="big", score=1.0,
                                                    comment="great"))
        assert ok.learned
        cases = [
            (pb.FeedbackRequest(prompt="x", model="big", score=1.5), grpc.StatusCode.INVALID_ARGUMENT,
             "feedback.score: must be in [0, 1]"),
            (pb.FeedbackRequest(prompt="x", model="gpt-9", score=1.0),
             grpc.StatusCode.INVALID_ARGUMENT, "feedback.model: unknown model"),
            (pb.FeedbackRequest(request_id="nope", score=1.0), grpc.StatusCode.NOT_FOUND,
             "feedback.request_id: 'nope' is not a recent decision"),
            (pb.FeedbackRequest(score=1.0), grpc.StatusCode.INVALID_ARGUMENT,
             "give a request_id or a prompt"),
        ]
        for req, code, needle in cases:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Feedback(req)
            assert info.value.code() == code and needle in (info.value.details() or "")


async def test_ab_variants_are_sticky_and_reported(artifact: Path, tmp_path: Path) -> None:
    """An A/B candidate gets its share of users, sticky per user; ab_report counts and scores them."""
    db = tmp_path / "ab.db"
    app = await _app(_config(artifact, db, {"candidate": {"artifact": "quality", "share": 0.5},
                                            "sticky_by": "user"}))
    seen: dict[str, set[str]] = {}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            for i in range(40):
                user = f"user-{i % 10}"
                d = await stub.Route(pb.RouteRequest(prompt=CODE.format(i=i), user=user))
                seen.setdefault(user, set()).add(d.variant)
                assert d.strategy == ("quality" if d.variant == "candidate" else "learned")
                await stub.Feedback(pb.FeedbackRequest(
                    request_id=d.request_id, score=1.0 if d.variant == "candidate" else 0.5))
    finally:
        await app.stop(0.5)
    assert all(len(v) == 1 for v in seen.values())
    variants = {next(iter(v)) for v in seen.values()}
    assert variants == {"control", "candidate"}
    report = ab_report(db)
    assert sum(r["count"] for r in report.values()) == 40
    assert report["candidate"]["score_ci95"] is not None
    assert report["candidate"]["mean_score"] == pytest.approx(1.0)
    assert report["control"]["mean_score"] == pytest.approx(0.5)
