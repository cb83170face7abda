"""Model versions: the pinned version's model_id is what goes upstream and its price is charged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest_complete import _base, make_config, model, router_for

from routecore.calling.completion import Completer, parse_settings
from routecore.calling.providers.sim_server import SimServer
from routecore.calling.rollout import Rollout
from routecore.calling.types import CompletionRequest
from routecore.config import parse_config
from routecore.domain import RouteRequest
from routecore.errors import ConfigError

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


def with_rollout(endpoint: dict[str, Any], rollout: dict[str, Any]) -> Any:
    raw = dict(_base())
    raw["models"] = {"gpt-4o": versioned("2024-08-06"), "plain": model("plain", endpoint="up")}
    raw["endpoints"] = {"up": endpoint}
    raw["routing"] = {"default_strategy": "multi_objective"}
    raw["rollout"] = rollout
    return parse_config(raw, "<test>")


async def test_rollout_sends_a_sticky_share_of_users_to_the_new_version(sim: SimServer) -> None:
    """rollout share 0.3: about 30% of 200 users are called on the new version's model_id at
    its price, and each user stays on the same version on every call."""
    cfg = with_rollout({"kind": "openai", "base_url": sim.base_url, "timeout_s": 5},
                       {"model": "gpt-4o", "to": "2024-11-20", "share": 0.3})
    c = Completer(cfg, router_for("gpt-4o"))
    side: dict[str, set[bool]] = {}
    for round_ in range(2):
        for u in range(200 if round_ == 0 else 20):
            req = CompletionRequest(RouteRequest(prompt="Summarize this.", user=f"user-{u}"))
            r = await c.complete(req)
            new = r.attempts[-1].deployment.endswith("gpt-4o-2024-11-20")
            price = (1.0, 4.0) if new else (2.5, 10.0)
            assert r.cost_usd == pytest.approx(
                (r.usage.input_tokens * price[0] + r.usage.output_tokens * price[1]) / 1e6)
            side.setdefault(f"user-{u}", set()).add(new)
    await c.aclose()
    assert all(len(s) == 1 for s in side.values())  # sticky
    on_new = sum(1 for s in side.values() if True in s)
    assert 40 <= on_new <= 80
    assert sim.engine._state["gpt-4o-2024-11-20"].calls >= 40
    assert c.rollouts.shares(cfg.models["gpt-4o"]) == {"2024-08-06": 0.7, "2024-11-20": 0.3}


def test_rollout_steps_up_on_schedule_and_names_bad_fields() -> None:
    """The share rises by step.share every step.every_s (capped at 1); mistakes name the field."""
    ro = Rollout("gpt-4o", "2024-11-20", 0.05, 0.1, 60.0, started=100.0)
    assert [ro.share_at(t) for t in (100.0, 159.0, 160.0, 400.0, 10_000.0)] == \
        pytest.approx([0.05, 0.05, 0.15, 0.55, 1.0])
    sim = {"kind": "simulated"}
    cfg = with_rollout(sim, {"model": "gpt-4o", "to": "2024-11-20", "share": 0.1})
    for bad, expect in (
            ({"model": "gpt-4o", "to": "2024-08-06", "share": 0.1},
             "rollout.to: '2024-08-06' is already pinned"),
            ({"model": "gpt-4o", "to": "2024-11-20", "share": -1}, "rollout.share: must be >= 0"),
            ({"model": "plain", "to": "x", "share": 0.1},
             "rollout.model: 'plain' has no versions to roll out"),
            ({"model": "gpt-4o", "to": "2099-01-01", "share": 0.1},
             "rollout.to: must name a version of gpt-4o (one of: 2024-08-06, 2024-11-20), "
             "got '2099-01-01'"),
            ({"model": "gpt-4o", "to": "2024-11-20", "share": 0.1, "stepp": {}},
             "rollout.stepp: unknown field (allowed: model, share, step, to)")):
        with pytest.raises(ConfigError) as info:  # through the Completer's validation
            Completer(with_rollout(sim, bad), router_for("gpt-4o"))
        assert info.value.problems == [expect]
    ro = parse_settings(cfg).rollout
    assert ro is not None and (ro.model, ro.to, ro.share_at(ro.started)) == ("gpt-4o", "2024-11-20", 0.1)
