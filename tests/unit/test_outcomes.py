"""Outcomes keeps recent decisions within both of its bounds, each owned by its tenant."""

from __future__ import annotations

from pathlib import Path

import pytest

from routecore import Router
from routecore.errors import NotFound
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
    assert [rid for _, rid in by_count.recent._recent] == ids[-3:]
    assert [rid for _, rid in by_chars.recent._recent] == ids[-2:]  # 98 chars each: two fit in 250
    assert by_chars.recent._chars == sum(len(r.text) for r in by_chars.recent._recent.values())


async def test_request_ids_belong_to_their_owner(default_router: Router, tmp_path: Path) -> None:
    """Another owner's request id is NOT_FOUND like a never-existing one, and reusing an id
    never replaces the recorded decision."""
    out = Outcomes(default_router, tmp_path / "o.db")
    try:
        first = default_router.route("What is the capital of France?", request_id="shared-1")
        out.record(first, "What is the capital of France?", owner="acme")
        second = default_router.route("Write a proof that sqrt(2) is irrational.",
                                      request_id="shared-1")
        out.record(second, "Write a proof that sqrt(2) is irrational.", owner="acme")
        assert out.recent._recent[("acme", "shared-1")].text == "What is the capital of France?"
        with pytest.raises(NotFound) as other:
            await out.feedback(request_id="shared-1", prompt="", model="", score=1.0,
                               owner="globex")
        with pytest.raises(NotFound) as never:
            await out.feedback(request_id="never-1", prompt="", model="", score=1.0,
                               owner="globex")
        assert str(other.value).replace("shared-1", "X") == str(never.value).replace("never-1", "X")
        ok = await out.feedback(request_id="shared-1", prompt="", model="", score=1.0,
                                owner="acme")
        assert ok.feedback_id
    finally:
        await out.aclose()
