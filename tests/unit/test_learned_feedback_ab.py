"""Unit tests of the feedback store and A/B assignment/reporting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routecore.errors import ConfigError, InvalidRequest
from routecore.learned.ab import DecisionLog, ab_report
from routecore.learned.feedback import FeedbackStore, feedback_path
from routecore.routing.ab import CANDIDATE, CONTROL, assign, parse_ab


async def test_feedback_round_trip_and_export(tmp_path: Path) -> None:
    """Stored feedback comes back in order and exports to the training schema."""
    store = FeedbackStore(tmp_path / "fb.db")
    fid = await store.add(request_id="r1", prompt="hello", model="m1", score=1.0, cost_usd=0.01)
    await store.add(request_id="r2", prompt="bye", model="m2", score=0.0, comment="bad")
    rows = await store.rows()
    assert [r["request_id"] for r in rows] == ["r1", "r2"] and rows[0]["feedback_id"] == fid
    n = await store.export_jsonl(tmp_path / "out.jsonl")
    recs = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert n == 2 and recs[0]["scores"] == {"m1": 1.0} and recs[0]["costs"] == {"m1": 0.01}
    with pytest.raises(InvalidRequest, match=r"feedback\.score"):
        await store.add(request_id="r3", prompt="x", model="m1", score=1.5)
    await store.close()


def test_ab_assignment_is_sticky_and_proportional() -> None:
    """The same user always gets the same variant and about `share` of users get the candidate."""
    cfg = parse_ab({"ab": {"candidate": {"artifact": "cost", "share": 0.2}, "sticky_by": "user"}})
    assert cfg is not None
    first = [assign(cfg, user=f"u{i}") for i in range(2000)]
    assert first == [assign(cfg, user=f"u{i}") for i in range(2000)]
    assert 0.15 < first.count(CANDIDATE) / 2000 < 0.25


def test_ab_config_errors_name_exact_paths() -> None:
    """Bad ab/feedback sections raise ConfigError naming each field."""
    with pytest.raises(ConfigError) as ei:
        parse_ab({"ab": {"candidate": {"artifact": "/no/such", "share": 2}, "sticky_by": "ip"}})
    text = str(ei.value)
    assert "ab.candidate.artifact" in text and "ab.candidate.share" in text
    assert "ab.sticky_by" in text
    with pytest.raises(ConfigError, match=r"feedback\.path"):
        feedback_path({"feedback": {"path": ""}})


async def test_ab_report_counts_costs_and_scores(tmp_path: Path) -> None:
    """The report joins decisions with feedback: count, mean cost, mean score and its CI."""
    db = tmp_path / "fb.db"
    store = FeedbackStore(db)
    log = DecisionLog(db)
    for i in range(10):
        variant = CANDIDATE if i % 2 else CONTROL
        await log.record(f"r{i}", variant, "m", 0.001 * (1 + i % 2))
        await store.add(request_id=f"r{i}", prompt="p", model="m", score=float(i % 2))
    await log.close()
    await store.close()
    rep = ab_report(db)
    assert rep[CONTROL]["count"] == 5 and rep[CANDIDATE]["mean_score"] == pytest.approx(1.0)
    assert rep[CANDIDATE]["mean_cost_usd"] == pytest.approx(0.002)
    assert rep[CONTROL]["score_ci95"] == [0.0, 0.0]
