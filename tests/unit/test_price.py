"""Prices: batch discount and long-context tiers, validated and applied to costs."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import yaml

from routecore.config import Price, PriceTier, parse_config
from routecore.errors import ConfigError


def _raw() -> dict[str, Any]:
    return yaml.safe_load(resources.files("routecore").joinpath("defaults.yaml").read_text())


def test_tier_and_batch_rates() -> None:
    """Past the tier's threshold all tokens pay the tier's rates; batch takes the discount off."""
    p = Price(1.25, 10.0, batch_discount=0.5, tiers=(PriceTier(200_000, 2.5, 15.0),))
    assert p.cost(200_000, 1000) == pytest.approx((200_000 * 1.25 + 1000 * 10.0) / 1e6)
    assert p.cost(200_001, 1000) == pytest.approx((200_001 * 2.5 + 1000 * 15.0) / 1e6)
    assert p.cost(1000, 1000, batch=True) == pytest.approx(p.cost(1000, 1000) / 2)
    assert Price(1.0, 2.0).cost(10, 10, batch=True) == Price(1.0, 2.0).cost(10, 10)


@pytest.mark.parametrize(("price", "problem"), [
    ({"input": 1, "output": 2, "batch_discount": 1.5}, "price.batch_discount: must be <= 0.99"),
    ({"input": 1, "output": 2, "batch_discount": -0.1}, "price.batch_discount: must be >= 0"),
    ({"input": 1, "output": 2, "long_context": {"input": 2, "output": 3}},
     "price.long_context.above_input_tokens: is required"),
    ({"input": 1, "output": 2, "long_context": {"above_input_tokens": 10, "input": 2,
                                                "output": 3, "cached": 1}},
     "price.long_context.cached: unknown field"),
    ({"input": 1, "output": 2, "batch": 0.5}, "price.batch: unknown field"),
])
def test_bad_prices_name_the_field(price: dict[str, Any], problem: str) -> None:
    """A bad batch discount or tier is a config error naming the exact field."""
    raw = _raw()
    raw["models"]["gpt-5"]["price"] = price
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert f"models.gpt-5.{problem}" in str(info.value)


def test_route_estimates_with_the_long_context_tier() -> None:
    """A prompt past a model's tier is estimated at the tier's rates; a short one is not."""
    from routecore import Router
    from routecore.domain import Constraints

    raw = _raw()
    raw["models"]["gpt-4o-mini"]["price"] = {
        "input": 0.15, "output": 0.60, "long_context": {"above_input_tokens": 100,
                                                        "input": 1.5, "output": 6.0}}
    router = Router.from_config(parse_config(raw))
    only = Constraints(allow_models=frozenset({"gpt-4o-mini"}), max_output_tokens=100)
    short = router.route("What is the capital of France?", constraints=only)
    long = router.route("word " * 400 + "What is the capital of France?", constraints=only)
    assert short.estimated_cost_usd == pytest.approx(
        (short.input_tokens * 0.15 + 100 * 0.60) / 1e6)
    assert long.input_tokens > 100
    assert long.estimated_cost_usd == pytest.approx((long.input_tokens * 1.5 + 100 * 6.0) / 1e6)
