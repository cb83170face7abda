"""routing.batch.route_batch in process: Route's decisions, per-item errors, size caps."""

from __future__ import annotations

import pytest

from routecore import Router
from routecore.domain import Constraints, Decision, Message, RouteRequest
from routecore.errors import InvalidRequest, NoModelAvailable
from routecore.routing.batch import MAX_BATCH, route_batch


def test_batch_equals_route_per_item(default_router: Router) -> None:
    """Each item's decision picks what route() picks, with the same explanation."""
    reqs = [RouteRequest(prompt="What is 2+2?"),
            RouteRequest(prompt="Écris un poème sur la mer, s'il te plaît."),
            RouteRequest(messages=(Message("user", "Fix this bug: x = [1, 2"),)),
            RouteRequest(prompt="Summarize the report", strategy="cost",
                         constraints=Constraints(min_quality=0.5))]
    got = route_batch(default_router, reqs)
    for req, d in zip(reqs, got, strict=True):
        assert isinstance(d, Decision)
        want = default_router.route(req)
        assert (d.model, d.fallbacks, d.category, d.reason) == \
            (want.model, want.fallbacks, want.category, want.reason)
        assert d.request_id != want.request_id


def test_errors_stay_in_their_slots(default_router: Router) -> None:
    """A bad item's slot holds its error; the items around it are decided."""
    reqs = [RouteRequest(prompt="hi"), RouteRequest(prompt=""),
            RouteRequest(prompt="hi", constraints=Constraints(max_cost_usd=1e-15)),
            RouteRequest(prompt="hello")]
    a, b, c, d = route_batch(default_router, reqs)
    assert isinstance(a, Decision) and isinstance(d, Decision)
    assert isinstance(b, InvalidRequest) and isinstance(c, NoModelAvailable)


def test_size_caps(default_router: Router) -> None:
    """An empty batch and one over MAX_BATCH raise InvalidRequest before any work."""
    with pytest.raises(InvalidRequest, match="must not be empty"):
        route_batch(default_router, [])
    with pytest.raises(InvalidRequest, match=f"limit of {MAX_BATCH}"):
        route_batch(default_router, [RouteRequest(prompt="x")] * (MAX_BATCH + 1))
