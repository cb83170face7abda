"""Outcomes keeps recent decisions within both of its bounds."""

from __future__ import annotations

from pathlib import Path

from routecore import Router
from routecore.learned.outcomes import Outcomes


def test_recent_decisions_bounded_by_count_and_characters(default_router: Router,
                                                           tmp_path: Path) -> None:
    """The oldest decisions are forgotten once either the count or the text budget is exceeded."""
    by_count = Outcomes(default_router, tmp_path / "a.db", capacity=3, max_chars=10**9)
    by_chars = Outcomes(default_router, tmp_path / "b.db", capacity=100, max_chars=250)
    ids = []
    for i in range(5):
        d = default_router.route(f"question number {i}?" + " pad" * 20, request_id=f"r{i}")
        ids.append(d.request_id)
        by_count.record(d, f"question number {i}?" + " pad" * 20)
        by_chars.record(d, f"question number {i}?" + " pad" * 20)
    assert list(by_count._recent) == ids[-3:]
    assert list(by_chars._recent) == ids[-2:]  # 98 chars each: two fit in 250
    assert by_chars._chars == sum(len(r.text) for r in by_chars._recent.values())
