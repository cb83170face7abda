"""Deployment weights are real traffic shares over HTTP."""

from __future__ import annotations

import asyncio

from conftest_complete import make_config, model, router_for

from routecore.calling.completion import Completer
from routecore.calling.providers.sim_server import SimServer
from routecore.calling.types import CompletionRequest
from routecore.domain import RouteRequest

REQ = CompletionRequest(RouteRequest(prompt="Summarize the key points of this meeting."))


async def test_weights_split_1000_calls_by_share() -> None:
    """Two deployments weighted 0.9/0.1 get about 900 and 100 of 1,000 calls (was 1000/0)."""
    deps = [{"endpoint": "a", "model_id": "w-a", "weight": 0.9},
            {"endpoint": "b", "model_id": "w-b", "weight": 0.1}]
    served = make_config({"m": model("m", endpoint="a", deployments=deps)},
                         endpoints={"a": {"kind": "simulated"}, "b": {"kind": "simulated"}})
    async with SimServer(served) as srv:
        eps = {n: {"kind": "openai", "base_url": srv.base_url, "timeout_s": 5} for n in "ab"}
        c = Completer(make_config({"m": model("m", endpoint="a", deployments=deps)},
                                  endpoints=eps), router_for("m"))
        for _ in range(500):  # one caller at a time: the case that sent 1000 of 1000 to a
            await c.complete(REQ)
        for _ in range(25):  # 20 concurrent callers
            await asyncio.gather(*(c.complete(REQ) for _ in range(20)))
        await c.aclose()
        a, b = srv.engine._state["w-a"].calls, srv.engine._state["w-b"].calls
    assert a + b == 1000 and 850 <= a <= 950
