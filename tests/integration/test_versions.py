"""Model versions: the pinned version's model_id is what goes upstream and its price is charged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest_complete import make_config, model, router_for

from routecore.calling.completion import Completer
from routecore.calling.providers.sim_server import SimServer
from routecore.calling.types import CompletionRequest
from routecore.domain import RouteRequest

REQ = CompletionRequest(RouteRequest(prompt="Summarize the key points of this meeting."))


def versioned(pinned: str) -> dict[str, Any]:
    m = model("gpt-4o", endpoint="up")
    del m["model_id"]
    m["versions"] = {"2024-08-06": {"model_id": "gpt-4o-2024-08-06",
                                    "price": {"input": 2.5, "output": 10.0}},
                     "2024-11-20": {"model_id": "gpt-4o-2024-11-20",
                                    "price": {"input": 1.0, "output": 4.0}}}
    m["pinned"] = pinned
    return m


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    cfg = make_config({"gpt-4o": versioned("2024-08-06")}, endpoints={"up": {"kind": "simulated"}})
    async with SimServer(cfg) as srv:
        yield srv


async def test_pinned_version_is_called_upstream_and_charged(sim: SimServer) -> None:
    """The upstream receives the pinned version's model_id (not the bare name) at its price."""
    endpoints = {"up": {"kind": "openai", "base_url": sim.base_url, "timeout_s": 5}}
    for pin, (p_in, p_out) in (("2024-08-06", (2.5, 10.0)), ("2024-11-20", (1.0, 4.0))):
        cfg = make_config({"gpt-4o": versioned(pin)}, endpoints=endpoints)
        assert cfg.models["gpt-4o"].version == pin
        c = Completer(cfg, router_for("gpt-4o"))
        r = await c.complete(REQ)
        await c.aclose()
        state = sim.engine._state
        assert state[f"gpt-4o-{pin}"].calls >= 1 and "gpt-4o" not in state
        assert r.cost_usd == pytest.approx(
            (r.usage.input_tokens * p_in + r.usage.output_tokens * p_out) / 1e6)
