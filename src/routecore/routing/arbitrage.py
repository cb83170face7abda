"""Provider arbitrage: which deployment of a model serves a request, and in what failover order.

The same model is often sold by several providers at different prices and
speeds (Llama 3.3 70B on Groq, Together and DeepInfra; GPT models on OpenAI
and Azure). Each deployment carries its own price (with long-context tiers),
latency priors and limits (config `models.<name>.deployments[]`). `rank`
orders them for one request:

1. healthy deployments that meet the request's constraints (estimated p95 for
   this request within `max_latency_ms`, estimated cost within
   `max_cost_usd`), cheapest first; deployments whose costs are equal form one
   group, inside which the caller keeps weights as traffic shares
   (calling/balance.py's smooth weighted round robin);
2. then unhealthy ones that meet them (open breaker, cooling down after a 429,
   over their own rpm/tpm), cheapest first: the call path re-checks them, and
   a breaker may have half-opened by then.

A deployment that misses a constraint is left out while another meets it;
when none meets both, those within `max_cost_usd` go fastest first (a seller
over it stays out while one within remains: that is money the caller refused
to spend); when none is within it either, all go, fastest first under a
latency constraint, else cheapest first, since the model-level policy judged
the model fit.
`Router.decide` names the first one (provider, cost at its price, the why);
`Completer` calls them in this order, so Route and Complete agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from routecore.config import Deployment, Latency, ModelSpec, Price
from routecore.domain import Constraints

# deployment key -> why it is unhealthy now ("" healthy); see Completer.deployment_health.
Health = Callable[[str], str]
_SAME_COST = 1e-9  # relative: costs this close are equal (weights share the traffic)


@dataclass(slots=True)  # not frozen: built per request, and a frozen init costs 2x
class Option:
    """One deployment as priced and timed for this request."""

    deployment: Deployment
    provider: str
    price: Price
    cost_usd: float  # estimated at this deployment's price
    p95_ms: float  # estimated 95th-percentile time to this request's answer
    problem: str = ""  # why it is not a first choice ("" none)
    miss: str = ""  # the request's constraint it misses ("" none)


@dataclass(frozen=True, slots=True)
class Ranking:
    """Deployments in failover order, as groups of equal cost (weights share a group)."""

    groups: tuple[tuple[Option, ...], ...]
    reason: str  # "" when the model has a single deployment

    @property
    def first(self) -> Option:
        return self.groups[0][0]

    def options(self) -> list[Option]:
        return [o for g in self.groups for o in g]



def _ms(x: float) -> str:
    """A latency for a reason string; a caller's absurd limit (1e300) stays short."""
    return f"{x:.0f} ms" if x < 1e9 else f"{x:.3g} ms"

def price_of(spec: ModelSpec, d: Deployment) -> Price:
    """The deployment's own price, else the model's (the served version's in a rollout)."""
    return d.price if d.price is not None else spec.price


def deployments_of(spec: ModelSpec) -> tuple[Deployment, ...]:
    """The model's deployments; none configured: one on the endpoint named by its provider."""
    if spec.deployments:
        return spec.deployments
    return (Deployment(spec.provider, spec.model_id, name=spec.provider),)


def p95_estimate(lat: Latency, input_tokens: int, output_tokens: int) -> float:
    """The p95 prior for this request: longer answers (past 512 tokens at tokens_per_s) and
    prompt reading (50 ms per token-per-second, as the policy's estimate) add to it; a short
    answer does not take the tail below the prior (a constraint is checked against it)."""
    longer = max(0.0, (output_tokens - 512.0) / lat.tokens_per_s * 1000.0)
    return lat.p95_ms + longer + input_tokens * 50.0 / lat.tokens_per_s


def rank(spec: ModelSpec, input_tokens: int, output_tokens: int, *,
         max_latency_ms: float | None = None, max_cost_usd: float | None = None,
         health: Health | None = None) -> Ranking:
    """Order `spec`'s deployments for a request (see the module docstring)."""
    deps = deployments_of(spec)
    options: list[Option] = []
    fit: list[Option] = []
    affordable: list[Option] = []  # within max_cost_usd, whatever their p95
    for d in deps:
        price = price_of(spec, d)
        lat = d.latency or spec.latency
        cost = price.cost(input_tokens, output_tokens)
        p95 = p95_estimate(lat, input_tokens, output_tokens)
        dear = max_cost_usd is not None and cost > max_cost_usd
        miss = ""
        if max_latency_ms is not None and p95 > max_latency_ms:
            miss = f"p95 {_ms(p95)} > {_ms(max_latency_ms)}"
        elif dear:
            miss = "over max_cost_usd"
        o = Option(d, d.provider or spec.provider, price, cost, p95,
                   health(d.key) if health is not None else "", miss)
        options.append(o)
        if not miss:
            fit.append(o)
        if not dear:
            affordable.append(o)
    if len(options) == 1:
        return Ranking(((options[0],),), "")
    # None meets both: max_cost_usd is money the caller refused to spend, so a dearer seller
    # stays out while one within it remains (the fastest of those first); p95 is a wish.
    pool = fit or affordable or options
    left_out = [o for o in options if o not in pool]
    by_speed = not fit and max_latency_ms is not None
    if by_speed:
        pool.sort(key=lambda o: (o.p95_ms, o.cost_usd))
    else:
        pool.sort(key=lambda o: (o.cost_usd, o.p95_ms))
    healthy = [o for o in pool if not o.problem]
    sick = [o for o in pool if o.problem] if len(healthy) < len(pool) else []
    groups = _group(healthy) + _group(sick)
    return Ranking(tuple(groups), _explain(groups, healthy, sick, left_out, input_tokens,
                                           output_tokens, max_latency_ms, by_speed, bool(fit)))


@dataclass(frozen=True, slots=True)
class Choice:
    """What a routing decision says about the deployment (see `choose`)."""

    provider: str
    deployment: str
    order: tuple[str, ...]  # failover order by deployment name
    cost_usd: float | None  # at the first deployment's price; None: the model's estimate stands
    reason: str
    list_cost_usd: float = 0.0  # the same request at the model's list price (the policy's)


def choose(spec: ModelSpec, input_tokens: int, output_tokens: int, constraints: Constraints,
           health: Health | None, list_price: Price) -> Choice:
    """The decision's deployment for the model the policy chose (which priced it at
    `list_price`, its cheapest seller's). A model with one deployment at the model's own
    price and provider costs no ranking."""
    deps = spec.deployments
    if len(deps) <= 1 and (not deps or (deps[0].price is None and not deps[0].provider)):
        name = deps[0].name if deps else spec.provider
        return Choice(spec.provider, name, (name,), None, "")
    ranked = rank(spec, input_tokens, output_tokens, max_latency_ms=constraints.max_latency_ms,
                  max_cost_usd=constraints.max_cost_usd, health=health)
    first = ranked.first
    return Choice(first.provider, first.deployment.name,
                  tuple(o.deployment.name for g in ranked.groups for o in g), first.cost_usd,
                  ranked.reason, list_price.cost(input_tokens, output_tokens))


def _group(options: Sequence[Option]) -> list[tuple[Option, ...]]:
    out: list[list[Option]] = []
    for o in options:
        if out and abs(o.cost_usd - out[-1][0].cost_usd) <= _SAME_COST * max(o.cost_usd, 1e-12):
            out[-1].append(o)
        else:
            out.append([o])
    return [tuple(g) for g in out]


def _per_mtok(o: Option, tokens: int) -> str:
    """The request's blended rate at this deployment: what it pays per million tokens."""
    return f"${o.cost_usd / max(tokens, 1) * 1e6:.2f}/Mtok"


def _explain(groups: list[tuple[Option, ...]], healthy: list[Option], sick: list[Option],
             left_out: list[Option], input_tokens: int, output_tokens: int,
             max_latency_ms: float | None, by_speed: bool, fit: bool) -> str:
    tokens = input_tokens + output_tokens
    first = groups[0][0]
    if not healthy:
        why = "no healthy deployment; cheapest of the rest"
    elif by_speed:
        within = " within max_cost_usd" if left_out else ""
        why = (f"none meets {_ms(max_latency_ms or 0.0)} p95{within}; fastest healthy{within}, "
               f"p95 {_ms(first.p95_ms)}")
    elif not fit:
        why = "none within max_cost_usd; cheapest healthy"
    else:
        why = "cheapest healthy"
        if max_latency_ms is not None:
            why += f" meeting {_ms(max_latency_ms)} p95"
    others = [o for g in groups for o in g if o is not first]
    versus = ", ".join(f"{o.deployment.name} {_per_mtok(o, tokens).split('/')[0]}"
                       for o in others[:3])
    text = f"deployment {first.deployment.name} ({why}: {_per_mtok(first, tokens)}"
    text += f" vs {versus})" if versus else ")"
    if len(groups[0]) > 1:
        text += " tied on price with " + ", ".join(o.deployment.name for o in groups[0][1:]) \
            + ": shared by weight"
    skipped = [f"{o.deployment.name} {o.problem} (tried last)" for o in sick if healthy] + \
        [f"{o.deployment.name} {o.miss if fit else 'over max_cost_usd'} (left out)"
         for o in left_out]
    if skipped:
        text += "; " + ", ".join(skipped)
    return text
