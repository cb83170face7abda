"""Helpers for the Complete tests: small configs over the simulated provider, decisions, fakes.

Imported by tests/unit/test_{resilience,providers,cascade}.py and
tests/integration/test_completion.py (tests/ is on sys.path through its conftest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from typing import Any

import yaml

from routecore.config import Config, parse_config
from routecore.domain import Candidate, Decision, RouteRequest

_BASE: dict[str, Any] | None = None

# Fast retries for tests: a handful of milliseconds at most.
FAST_RESILIENCE = {"retry": {"max_attempts": 2, "base_delay_ms": 1, "max_delay_ms": 4},
                   "breaker": {"failure_threshold": 50, "window_s": 30, "cooldown_s": 30}}


def _base() -> dict[str, Any]:
    global _BASE
    if _BASE is None:
        text = resources.files("routecore").joinpath("defaults.yaml").read_text("utf-8")
        _BASE = yaml.safe_load(text)
    return _BASE


def model(name: str, *, endpoint: str = "sim", price: tuple[float, float] = (1.0, 2.0),
          quality: float = 0.8, deployments: list[dict[str, Any]] | None = None,
          sim: Mapping[str, Any] | None = None, rpm: int = 0, tpm: int = 0,
          context_window: int = 100_000) -> dict[str, Any]:
    """A model entry served by `endpoint` (one deployment unless `deployments`)."""
    return {
        "provider": endpoint, "model_id": name,
        "price": {"input": price[0], "output": price[1]}, "context_window": context_window,
        "capabilities": ["json"], "quality": {"default": quality},
        "latency": {"p50_ms": 10, "p95_ms": 20},
        "rate_limits": {"rpm": rpm, "tpm": tpm},
        "deployments": deployments if deployments is not None else [{"endpoint": endpoint}],
        **({"sim": dict(sim)} if sim else {}),
    }


def make_config(models: Mapping[str, dict[str, Any]], *,
                endpoints: Mapping[str, dict[str, Any]] | None = None,
                resilience: Mapping[str, Any] | None = None,
                cascade: Mapping[str, Any] | None = None,
                ensemble: Mapping[str, Any] | None = None, **sections: Any) -> Config:
    """A validated Config with the built-in categories and the given models/endpoints
    (plus any other top-level `sections`)."""
    raw = dict(_base())
    raw["models"] = {k: dict(v) for k, v in models.items()}
    raw["endpoints"] = dict(endpoints or {"sim": {"kind": "simulated", "timeout_s": 5}})
    raw["routing"] = {"default_strategy": "multi_objective"}
    raw["resilience"] = dict(resilience if resilience is not None else FAST_RESILIENCE)
    if cascade is not None:
        raw["cascade"] = dict(cascade)
    if ensemble is not None:
        raw["ensemble"] = dict(ensemble)
    raw.update(sections)
    return parse_config(raw, "<test>")


def decision(model_name: str, fallbacks: Iterable[str] = (), *, category: str = "default",
             candidates: Iterable[Candidate] = (), request_id: str = "req-1") -> Decision:
    return Decision(
        model=model_name, provider="sim", model_version=model_name, fallbacks=tuple(fallbacks),
        category=category, category_confidence=1.0, complexity=0.5, estimated_cost_usd=0.0,
        estimated_latency_ms=0.0, predicted_quality=0.8, reason="test",
        candidates=tuple(candidates), router_version="test", strategy="test", input_tokens=0,
        request_id=request_id)


def router_for(model_name: str, fallbacks: Iterable[str] = (),
               **kw: Any) -> Callable[[RouteRequest], Decision]:
    d = decision(model_name, fallbacks, **kw)
    return lambda _req: d


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """An injectable sleep that records each delay and yields without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)
