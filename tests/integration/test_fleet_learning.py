"""Feedback across replicas: any replica finds the decision, every replica learns the same, and
what was learned survives a restart (Redis totals; with memory, the stored feedback)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from importlib import resources
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml

from routecore.config import Config, parse_config
from routecore.learned.train import train
from routecore.routing.learned_model import LearnedRouter
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

MODELS = ("big", "small")
PROMPTS = {"code": "Write a python function def f{i}(xs) that sorts xs",
           "trivia": "Who was the president of country number {i}?"}


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    """A small learned router trained on data unique to this test (so is its Redis state)."""
    data = tmp_path / "train.jsonl"
    salt = uuid.uuid4().hex
    with data.open("w") as f:
        for i in range(40):
            src = "code" if i % 2 else "trivia"
            f.write(json.dumps({"id": f"{salt}-{i}", "prompt": PROMPTS[src].format(i=i),
                                "source": src, "scores": {"big": 0.9, "small": 0.4 if i % 2 else 0.9},
                                "costs": {"big": 1e-3, "small": 1e-4}}) + "\n")
    train([data], tmp_path / "artifact", dim=256, progress=False)
    return tmp_path / "artifact"


def _config(artifact: Path, redis_url: str | None) -> Config:
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    template = raw["models"]["gpt-4o-mini"]
    raw["models"] = {m: {**template, "provider": "sim", "model_id": m, "fallbacks": [],
                         "deployments": [{"endpoint": "openai"}]} for m in MODELS}
    raw["routing"] = {"default_strategy": "learned", "learned": {"artifact": str(artifact)}}
    raw["classifier"]["feature_dim"] = 256
    if redis_url:
        raw["state"] = {"backend": "redis", "redis_url": redis_url, "timeout_s": 5.0}
    return parse_config(raw)


async def _start(cfg: Config, db: Path) -> tuple[App, grpc.aio.Channel]:
    app = App.from_config(cfg, access_log=False, feedback_db=str(db))
    port = await app.start("127.0.0.1", 0)
    return app, grpc.aio.insecure_channel(f"127.0.0.1:{port}")


def _learned(app: App) -> LearnedRouter:
    lr = app.router.learned
    assert isinstance(lr, LearnedRouter)
    return lr


async def _stop(*pairs: tuple[App, grpc.aio.Channel]) -> None:
    for app, ch in pairs:
        await ch.close()
        await app.stop(0)


async def test_feedback_reaches_any_replica_and_all_learn_the_same(
        artifact: Path, redis_url: str, tmp_path: Path) -> None:
    """A Route on one replica can get its Feedback on another; both apply the same learning,
    and a replica started later loads it."""
    cfg = _config(artifact, redis_url)
    a = await _start(cfg, tmp_path / "a.db")
    b = await _start(cfg, tmp_path / "b.db")
    try:
        d = await router_pb2_grpc.RouterStub(a[1]).Route(pb.RouteRequest(
            prompt=PROMPTS["code"].format(i=99)))
        res = await router_pb2_grpc.RouterStub(b[1]).Feedback(pb.FeedbackRequest(
            request_id=d.request_id, score=0.25))
        assert res.learned and res.feedback_id
        assert _learned(b[0]).n_online == 1
        for _ in range(60):  # replica A follows within its poll interval
            if _learned(a[0]).n_online == 1:
                break
            await asyncio.sleep(0.1)
        np.testing.assert_allclose(_learned(a[0]).q_sum, _learned(b[0]).q_sum)
        learned_sum = _learned(b[0]).q_sum.copy()
    finally:
        await _stop(a, b)
    assert not np.allclose(learned_sum, LearnedRouter.load(artifact).q_sum)
    c = await _start(cfg, tmp_path / "c.db")
    try:
        assert _learned(c[0]).n_online == 1
        np.testing.assert_allclose(_learned(c[0]).q_sum, learned_sum)
    finally:
        await _stop(c)


async def test_memory_backend_learns_stored_feedback_again_on_start(
        artifact: Path, tmp_path: Path) -> None:
    """With the memory backend a restart learns the feedback stored since the artifact again."""
    cfg = _config(artifact, None)
    first = await _start(cfg, tmp_path / "fb.db")
    try:
        stub = router_pb2_grpc.RouterStub(first[1])
        for i in range(3):
            await stub.Feedback(pb.FeedbackRequest(prompt=PROMPTS["trivia"].format(i=i),
                                                   model="small", score=0.25))
        learned_sum = _learned(first[0]).q_sum.copy()
    finally:
        await _stop(first)
    again = await _start(dataclasses.replace(cfg), tmp_path / "fb.db")
    try:
        assert _learned(again[0]).n_online == 3
        np.testing.assert_allclose(_learned(again[0]).q_sum, learned_sum)
    finally:
        await _stop(again)


