"""Load-aware choice (routing/load.py): observed latency and limits change the decision."""

from __future__ import annotations

import math

import pytest

from routecore import Constraints, Router
from routecore.config import load_config
from routecore.domain import LoadSnapshot, ModelLoad, RouteRequest
from routecore.errors import ConfigError, ModelsUnavailable
from routecore.routing.load import LoadView, parse_load
from routecore.server import convert
from routecore.state.backend import MemoryBackend
from routecore.state.observed import ObservedConfig, open_observed

PROMPT = "What is the capital of France?"


def _fed(router: Router, models: dict[str, ModelLoad], version: int = 1) -> None:
    snap = LoadSnapshot(version, 0.0, models)
    router.load_source = lambda: snap


@pytest.fixture
def router() -> Router:
    return Router.from_config(None)


def _pick(router: Router, **constraints: object) -> str:
    return router.route(PROMPT, strategy="latency",
                        constraints=Constraints(**constraints)).model  # type: ignore[arg-type]


def test_observed_slowness_rejects_with_observed_and_prior(router: Router) -> None:
    """A model whose observed p95 breaks max_latency_ms is not chosen, and says why with the
    observed and the prior numbers; the explanation of the choice shows them too."""
    first = _pick(router, max_latency_ms=2000)
    _fed(router, {first: ModelLoad(calls=40.0, p50_ms=2100.0, p95_ms=2300.0)})
    d = router.route(PROMPT, strategy="latency", constraints=Constraints(max_latency_ms=2000))
    assert d.model != first
    why = {c.model: c.rejected_reason for c in d.candidates}[first]
    assert why.startswith("estimated p95 latency ") and "> max_latency_ms 2,000" in why
    assert f"{first} p95 observed 2,300 ms (prior " in why and "over 40.0 recent calls" in why
    # Without the constraint the slow model is still eligible, its estimate is the observed one
    d = router.route(PROMPT, strategy="latency")
    cand = {c.model: c for c in d.candidates}[first]
    assert not cand.rejected_reason and cand.estimated_latency_ms > 1000
    assert d.load is not None and d.load[first].p95_ms == 2300.0


def test_observed_speed_shows_in_the_reason(router: Router) -> None:
    """The chosen model's observed-versus-prior numbers are in the decision's reason."""
    first = _pick(router)
    _fed(router, {first: ModelLoad(calls=10.0, p50_ms=120.0, p95_ms=300.0)})
    d = router.route(PROMPT, strategy="latency")
    assert d.model == first
    assert f"load: {first} p95 observed 300 ms (prior " in d.reason


def test_prior_weight_mixes_observed_and_prior(router: Router) -> None:
    """With calls equal to prior_weight (2) the latency used is halfway between them."""
    reg = router.registry
    i = reg.index["gpt-4o"]
    view = LoadView(LoadSnapshot(1, 0.0, {"gpt-4o": ModelLoad(calls=2.0, p50_ms=9000.0,
                                                                p95_ms=20000.0)}),
                    reg, router.load_config)
    assert view.p50[i] == pytest.approx((9000.0 + reg.p50_ms[i]) / 2)
    assert view.p95[i] == pytest.approx((20000.0 + reg.p95_ms[i]) / 2)
    other = reg.index["gpt-4o-mini"]
    assert view.p50[other] == reg.p50_ms[other]  # no observations: the prior


def test_a_model_at_its_rpm_limit_is_skipped(router: Router) -> None:
    """No request left in a model's RPM bucket: not chosen, and the reason says so."""
    first = _pick(router)
    _fed(router, {first: ModelLoad(rpm_left=0.4, rpm=60, tpm_left=None)})
    d = router.route(PROMPT, strategy="latency")
    assert d.model != first and first not in d.fallbacks
    why = {c.model: c.rejected_reason for c in d.candidates}[first]
    assert why == "at its limit: rate limit, 0.4 of 60 requests left this minute"
    assert "1 model(s) at a limit" in d.reason


def test_tpm_headroom_depends_on_the_request(router: Router) -> None:
    """A model with 2,000 tokens left takes a short request but not a 5,000-word story."""
    model = "gpt-4o"
    _fed(router, {model: ModelLoad(tpm_left=2000.0, tpm=100_000)})
    short = router.route(PROMPT, constraints=Constraints(allow_models=frozenset({model,
                                                                                "gpt-5"})))
    assert not {c.model: c.rejected_reason for c in short.candidates}[model]
    story = router.route("Write a 5,000-word story",
                         constraints=Constraints(allow_models=frozenset({model, "gpt-5"})))
    why = {c.model: c.rejected_reason for c in story.candidates}[model]
    assert why.startswith("at its limit: rate limit, 2,000 of 100,000 tokens left this minute")


def test_every_fitting_model_at_a_limit_is_unavailable(router: Router) -> None:
    """When the only models that fit are at their limits the request is UNAVAILABLE (retry
    later), not FAILED_PRECONDITION; a pinned model is tried regardless."""
    _fed(router, {"gpt-4o": ModelLoad(rpm_left=0.0, rpm=10)})
    with pytest.raises(ModelsUnavailable, match="at its limit"):
        router.route(PROMPT, constraints=Constraints(allow_models=frozenset({"gpt-4o"})))
    assert router.route(RouteRequest(prompt=PROMPT, model="gpt-4o")).model == "gpt-4o"


def test_max_in_flight_caps_a_model() -> None:
    """With load.max_in_flight, a model with that many calls in flight is at its limit."""
    cfg = load_config(None)
    raw_router = Router(cfg)
    raw_router.load_config = parse_load({"max_in_flight": 3})
    first = _pick(raw_router)
    _fed(raw_router, {first: ModelLoad(in_flight=3)})
    d = raw_router.route(PROMPT, strategy="latency")
    assert d.model != first
    why = {c.model: c.rejected_reason for c in d.candidates}[first]
    assert why == "at its limit: 3 calls in flight (load.max_in_flight 3)"


def test_recovers_as_observations_decay(router: Router) -> None:
    """Slow calls recorded in memory reject a model; as they decay it is chosen again."""
    clock = _Clock()
    obs = open_observed(MemoryBackend(clock=clock), ObservedConfig(half_life_s=1.0,
                                                                   refresh_s=0.0),
                        list(router.registry.names), {})
    router.load_source = obs.snapshot
    first = _pick(router, max_latency_ms=3000)
    for _ in range(30):
        obs.observe(first, 9000.0)
    assert _pick(router, max_latency_ms=3000) != first
    clock.now += 12.0  # 12 half-lives: 30 calls weigh 0.007
    assert _pick(router, max_latency_ms=3000) == first


def test_load_config_errors_name_the_field() -> None:
    """Bad load settings fail naming the exact field."""
    with pytest.raises(ConfigError, match=r"load\.half_life_s"):
        parse_load({"half_life_s": 0})
    with pytest.raises(ConfigError, match=r"load\.max_in_flight"):
        parse_load({"max_in_flight": -1})
    with pytest.raises(ConfigError, match=r"load\.bogus: unknown field"):
        parse_load({"bogus": 1})
    assert parse_load(None).enabled


def test_candidates_carry_the_observed_numbers(router: Router) -> None:
    """The gRPC Candidate carries the observed percentiles, calls, in flight and headroom."""
    _fed(router, {"gpt-4o": ModelLoad(calls=5.0, p50_ms=800.0, p95_ms=1500.0, in_flight=2,
                                      rpm_left=40.0, rpm=60)})
    pb = convert.decision(router.route(PROMPT))
    cand = {c.model: c for c in pb.candidates}
    g = cand["gpt-4o"]
    assert (g.observed_p50_ms, g.observed_p95_ms, g.observed_calls, g.in_flight) == (
        800.0, 1500.0, 5.0, 2)
    assert g.HasField("rpm_left") and g.rpm_left == 40.0 and not g.HasField("tpm_left")
    mini = cand["gpt-4o-mini"]
    assert not mini.HasField("observed_p95_ms") and not mini.HasField("rpm_left")
    assert pb.estimated_output_tokens == 512 and pb.output_tokens_basis == "default"
    assert not math.isnan(g.observed_p95_ms)


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now
