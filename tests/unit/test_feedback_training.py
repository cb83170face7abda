"""Training from stored feedback: source is metadata, a floor on records, a per-user default DB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routecore.cli import main
from routecore.learned.feedback import FeedbackStore, default_path
from routecore.learned.outcomes import Outcomes
from routecore.routing.learned_model import LearnedRouter
from routecore.routing.router import Router

PROMPTS = {"math": "Compute the integral of x^{i} from 0 to 1.",
           "code": "Write a Python function number {i} that reverses a list."}


def _data(path: Path) -> Path:
    with path.open("w") as fh:
        for i in range(30):
            for src, text in PROMPTS.items():
                fh.write(json.dumps({"id": f"{src}-{i}", "prompt": text.format(i=i), "source": src,
                                     "scores": {"gpt-4o": 1.0, "gpt-4o-mini": 0.5},
                                     "costs": {"gpt-4o": 0.01, "gpt-4o-mini": 0.001}}) + "\n")
    return path


async def _feedback(path: Path, n: int, source: str) -> Path:
    store = FeedbackStore(path)
    for i in range(n):
        await store.add(request_id=f"r{i}", prompt=PROMPTS["code"].format(i=i), model="gpt-4o",
                        score=1.0, source=source)
    await store.close()
    return path


async def test_feedback_source_never_becomes_a_task_family(tmp_path: Path) -> None:
    """`train --feedback` keeps the tasks of the data files; a feedback source is not one."""
    db = await _feedback(tmp_path / "fb.db", 60, "attacker-chosen-label")
    out = tmp_path / "art"
    assert main(["train", "--quiet", "--dim", "256", "--data", str(_data(tmp_path / "d.jsonl")),
                 "--feedback", str(db), "--out", str(out)]) == 0
    assert LearnedRouter.load(out).tasks == ("code", "math")
    only = tmp_path / "only"
    assert main(["train", "--quiet", "--dim", "256", "--feedback", str(db),
                 "--out", str(only)]) == 0
    assert LearnedRouter.load(only).tasks == ("default",)


async def test_train_refuses_a_handful_of_feedback_records(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Below --min-feedback (50 by default) `train --feedback` writes nothing and says why."""
    db = await _feedback(tmp_path / "fb.db", 3, "")
    out = tmp_path / "art"
    assert main(["train", "--quiet", "--dim", "256", "--feedback", str(db),
                 "--out", str(out)]) == 2
    assert "3 feedback records, fewer than the 50" in capsys.readouterr().err
    assert not out.exists()
    assert main(["train", "--quiet", "--dim", "256", "--feedback", str(db), "--min-feedback", "3",
                 "--out", str(out)]) == 0


async def test_default_feedback_db_is_per_user(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With no path configured, feedback goes under XDG_DATA_HOME (else ~/.local/share), not
    into the directory the server was started from."""
    assert default_path({"HOME": "/home/u"}) == Path("/home/u/.local/share/routecore/feedback.db")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    outcomes = Outcomes(Router.from_config(None))
    await outcomes.feedback(request_id="", prompt="What is 2+2?", model="gpt-4o", score=1.0)
    await outcomes.aclose()
    assert (tmp_path / "xdg" / "routecore" / "feedback.db").is_file()
    assert not list(tmp_path.glob("*.db"))
