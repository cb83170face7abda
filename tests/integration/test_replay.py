"""`routecore replay`: logged traffic through a candidate config predicts what the same
traffic then really does under it (decisions and cost)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from routecore.cli import main
from routecore.config import load_config, parse_config
from routecore.learned.replay import Replayer
from routecore.observe.store import documents
from routecore.server.app import App
from routecore.v1 import router_pb2 as pb
from routecore.v1 import router_pb2_grpc

PROMPTS = [
    "What is 2+2?",
    "Translate 'good morning' into French.",
    "Write a Python function that merges two sorted lists, with tests.",
    "Prove that the square root of 2 is irrational, step by step.",
    "Summarize the plot of Hamlet in three sentences.",
    "Explain how a hash map handles collisions.",
    "Write a haiku about the sea.",
    "What is the capital of Canada?",
]


def _config(**sections: Any) -> Any:
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw.update(sections)
    return parse_config(raw)


async def _serve_traffic(config: Any, db: Path) -> list[dict[str, Any]]:
    app = App.from_config(config, access_log=False, feedback_db=str(db.with_suffix(".fb")))
    app.audit_db = str(db)
    await app.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            for i, prompt in enumerate(PROMPTS):
                await stub.Complete(pb.CompleteRequest(
                    route=pb.RouteRequest(prompt=prompt, tenant=f"t{i % 2}"),
                    max_output_tokens=64), timeout=10)
                await stub.Route(pb.RouteRequest(prompt=prompt, tenant=f"t{i % 2}"))
    finally:
        await app.stop(0.5)
    return [d async for d in documents(str(db))]


async def test_replay_predicts_what_the_candidate_then_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Replaying the log through a cost-first config predicts the model moves that config
    then really makes on the same traffic, and its cost within 25%."""
    served = await _serve_traffic(_config(audit={"store_prompts": True}), tmp_path / "a.db")
    # Cost-first by weight: with the 2026-11 catalogue's stronger flagships, strategy "cost"
    # (cheapest within 0.05 of the best predicted quality) costs more than the default here.
    candidate_yaml = _write(tmp_path, {"weights": {"quality": 1.0, "cost": 3.0, "latency": 0.1}})
    report = (await Replayer(load_config(candidate_yaml)).run(str(tmp_path / "a.db"))).report(0)
    assert report["replayed"] == 2 * len(PROMPTS) == report["with_prompt"]
    assert report["changed"] > 0 and report["cost_change"] < 0
    assert set(report["by_tenant"]) == {"t0", "t1"}

    actual = await _serve_traffic(load_config(candidate_yaml), tmp_path / "b.db")
    before = {(d["rpc"], d["prompt"]): d["model"] for d in served}
    moves = Counter((before[(d["rpc"], d["prompt"])], d["model"]) for d in actual
                    if before[(d["rpc"], d["prompt"])] != d["model"])
    assert moves == Counter({(m["from"], m["to"]): m["requests"] for m in report["moves"]})
    real = sum(d["cost_usd"] if d["rpc"] == "Complete" else d["estimated_cost_usd"]
               for d in actual)
    assert report["cost_candidate_usd"] == pytest.approx(real, rel=0.25)

    capsys.readouterr()
    assert await asyncio.to_thread(main, ["replay", "--audit", str(tmp_path / "a.db"),
                                          "--config", str(candidate_yaml), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["moves"] == report["moves"]


async def test_replay_without_prompts_uses_the_logged_features(tmp_path: Path) -> None:
    """With prompts not stored, replay routes from the logged classification and tokens, and an
    unchanged config changes no decision."""
    await _serve_traffic(_config(), tmp_path / "a.db")
    same = _write(tmp_path, {})
    report = (await Replayer(load_config(same)).run(str(tmp_path / "a.db"))).report(0)
    assert report["from_features"] == 2 * len(PROMPTS) and report["with_prompt"] == 0
    assert report["changed"] == 0 and report["cost_change"] == 0


def _write(tmp_path: Path, routing: dict[str, Any]) -> Path:
    raw = yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())
    raw["routing"] = {**raw.get("routing", {}), **routing}
    raw["audit"] = {"store_prompts": True}
    path = tmp_path / "candidate.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def test_replay_with_a_learned_artifact(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`--artifact DIR` replays through that learned router: requests logged with their
    prompt are routed by it (to its models only); those without a prompt are skipped."""
    import random

    from routecore.learned.train import train

    rng = random.Random(0)
    data = tmp_path / "train.jsonl"
    with data.open("w") as fh:
        for i in range(80):
            code = i % 2 == 1
            prompt = (f"Write a python function f{i} that sorts a list" if code
                      else f"Who was the president of country number {i}?")
            q = {"gpt-4o": 0.9, "gpt-4o-mini": 0.2 if code else 0.9}
            fh.write(json.dumps({"id": f"r{i}", "prompt": prompt, "source": str(code),
                                 "scores": {m: float(rng.random() < p) for m, p in q.items()},
                                 "costs": {"gpt-4o": 1e-3, "gpt-4o-mini": 1e-4}}) + "\n")
    artifact = tmp_path / "artifact"
    train([data], artifact, progress=False)
    await _serve_traffic(_config(audit={"store_prompts": True}), tmp_path / "a.db")
    plain = tmp_path / "plain.db"
    await _serve_traffic(_config(), plain)
    candidate = _write(tmp_path, {})
    capsys.readouterr()
    for db, replayed in ((tmp_path / "a.db", 2 * len(PROMPTS)), (plain, 0)):
        assert await asyncio.to_thread(main, ["replay", "--audit", str(db), "--config",
                                              str(candidate), "--artifact", str(artifact),
                                              "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["replayed"] == replayed
        assert {m["to"] for m in report["moves"]} <= {"gpt-4o", "gpt-4o-mini"}
    assert report["skipped"] == {"InvalidRequest": 2 * len(PROMPTS)}
