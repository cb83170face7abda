"""Time budgets: retries leave the fallbacks their share; no deadline still means a bounded call."""

from __future__ import annotations

from conftest_complete import make_config, model, router_for

from routecore.calling.completion import Completer
from routecore.calling.deadline import Deadline
from routecore.calling.types import CompletionRequest
from routecore.domain import RouteRequest
from routecore.errors import DeadlineExceeded

REQ = CompletionRequest(RouteRequest(prompt="Summarize the key points of this meeting."))


async def test_backoff_does_not_eat_the_fallbacks_share_of_the_deadline() -> None:
    """A 429 whose Retry-After would use most of the deadline is not retried: the fallback
    gets the time instead and answers."""
    cfg = make_config(
        {"error_429-b": model("error_429-b", sim={"retry_after_s": 0.4}),
         "slow_300": model("slow_300")},
        resilience={"retry": {"max_attempts": 2, "base_delay_ms": 1, "max_delay_ms": 4},
                    "breaker": {"failure_threshold": 50}})
    c = Completer(cfg, router_for("error_429-b", ["slow_300"]))
    r = await c.complete(REQ, Deadline.after(0.6))
    assert r.model == "slow_300"
    assert [a.model for a in r.attempts] == ["error_429-b", "slow_300"]  # no retry of the 429
    await c.aclose()


def test_deadline_share_splits_the_time_left() -> None:
    """share(n) is 1/n of the time left; unbounded and n=1 keep the deadline as it is."""
    now = [100.0]
    d = Deadline.after(9.0, lambda: now[0])
    assert d.share(3).remaining() == 3.0 and d.share(1) is d
    assert Deadline.none().share(3).remaining() is None
    assert d.within(2.0).remaining() == 2.0 and d.within(20.0) is d


async def test_no_caller_deadline_is_bounded_by_total_timeout() -> None:
    """Without a caller deadline a hanging upstream is cut at resilience.total_timeout_s, not
    after provider timeout x attempts x deployments."""
    cfg = make_config({"timeout-d": model("timeout-d")},
                      endpoints={"sim": {"kind": "simulated", "timeout_s": 2}},
                      resilience={"total_timeout_s": 0.2, "retry": {"max_attempts": 2}})
    c = Completer(cfg, router_for("timeout-d"))
    try:
        await c.complete(REQ)
    except DeadlineExceeded as exc:
        assert "deadline exceeded" in exc.message
    else:
        raise AssertionError("a hanging upstream must not answer")
    finally:
        await c.aclose()
