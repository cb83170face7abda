"""Recent decisions and online-learning totals: one contract over both backends."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from routecore.state.decisions import Recent, open_decisions
from routecore.state.learning import open_learning


def _id() -> str:
    return uuid.uuid4().hex[:12]


async def test_decisions_first_wins_and_belong_to_their_owner(state_backend: Any) -> None:
    """A recorded decision is found by its owner only, and a second one never replaces it."""
    d, rid = open_decisions(state_backend), _id()
    d.put("acme", rid, Recent("What is 2+2?", "gpt-4o", 0.001, "control"))
    d.put("acme", rid, Recent("overwrite attempt", "other", 9.0, ""))
    for _ in range(2):  # before and after the writer has flushed
        assert await d.get("acme", rid) == Recent("What is 2+2?", "gpt-4o", 0.001, "control")
        assert await d.get("globex", rid) is None
        assert await d.get("acme", _id()) is None
        await d.aclose()


async def test_learning_totals_add_up_per_cell(state_backend: Any) -> None:
    """Each add lands in its model's column, totals accumulate, and the version counts adds."""
    learning, art = open_learning(state_backend), _id()
    assert await learning.version(art) == 0
    s, c, v = await learning.totals(art, 2, 3)
    assert v == 0 and not s.any() and not c.any()
    assert await learning.add(art, 1, np.array([0.5, 0.25]), np.array([1.0, 0.5])) == 1
    assert await learning.add(art, 1, np.array([0.5, 0.0]), np.array([1.0, 0.0])) == 2
    assert await learning.add(art, 2, np.array([0.0, 0.75]), np.array([0.0, 1.0])) == 3
    s, c, v = await learning.totals(art, 2, 3)
    np.testing.assert_allclose(s, [[0, 1.0, 0], [0, 0.25, 0.75]])
    np.testing.assert_allclose(c, [[0, 2.0, 0], [0, 0.5, 1.0]])
    assert v == 3 == await learning.version(art)


async def test_a_decision_is_found_on_another_replica_right_after_it_is_made(
        redis_url: str) -> None:
    """A lookup on replica B right after replica A recorded (its writer not yet run) finds it."""
    from routecore.state import RedisBackend, StateConfig

    backends = [RedisBackend(StateConfig(backend="redis", redis_url=redis_url, timeout_s=5.0))
                for _ in range(2)]
    for b in backends:
        await b.start()
    a, b = (open_decisions(x) for x in backends)
    rid = _id()
    try:
        a.put("acme", rid, Recent("hi", "m", 0.0, ""))  # queued: A's writer has not run yet
        assert await b.get("acme", rid) == Recent("hi", "m", 0.0, "")
    finally:
        for d in (a, b):
            await d.aclose()
        for x in backends:
            await x.aclose()
