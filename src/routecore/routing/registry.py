"""The model registry: every model's prices, limits, capabilities and quality.

Built once from the frozen config. Besides name lookups it holds the same
facts as column arrays (one row per model) so the policy scores every model
with a handful of vectorised numpy operations instead of a Python loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

from routecore.config import Config, ModelSpec, Price
from routecore.domain import CAPABILITIES
from routecore.errors import UnknownModel, echo, echo_list

F64 = npt.NDArray[np.float64]

_CAP_BITS = {cap: 1 << i for i, cap in enumerate(CAPABILITIES)}


def capability_mask(capabilities: Sequence[str] | frozenset[str]) -> int:
    mask = 0
    for cap in capabilities:
        mask |= _CAP_BITS[cap]
    return mask


class Registry:
    """Immutable view of the configured models, by name and as column arrays."""

    def __init__(self, config: Config) -> None:
        self.names: tuple[str, ...] = tuple(config.models)
        self.specs: dict[str, ModelSpec] = dict(config.models)
        self.index: dict[str, int] = {n: i for i, n in enumerate(self.names)}
        self.categories: tuple[str, ...] = tuple(config.categories)
        specs = [self.specs[n] for n in self.names]
        self.providers: tuple[str, ...] = tuple(s.provider for s in specs)
        # Each model at its cheapest seller's price (routing/arbitrage.py picks the seller).
        self.prices: tuple[Price, ...] = tuple(s.list_price() for s in specs)
        self.price_in: F64 = np.array([p.input for p in self.prices]) / 1e6
        self.price_out: F64 = np.array([p.output for p in self.prices]) / 1e6
        self.context_window: F64 = np.array([s.context_window for s in specs], dtype=np.float64)
        self.max_output: F64 = np.array([s.max_output_tokens for s in specs], dtype=np.float64)
        self.p50_ms: F64 = np.array([s.latency.p50_ms for s in specs])
        # The latency constraint is checked on the fastest deployment's p95: the model can
        # meet it through that one, and arbitrage then picks a deployment that does.
        self.p95_ms: F64 = np.array([min([s.latency.p95_ms] + [
            d.latency.p95_ms for d in s.deployments if d.latency is not None]) for s in specs])
        self.tokens_per_s: F64 = np.array([s.latency.tokens_per_s for s in specs])
        self.cap_mask = np.array([capability_mask(s.capabilities) for s in specs], dtype=np.int64)
        # quality[m, c]: model m's quality on category c (default where unset).
        self.quality: F64 = np.array(
            [[s.quality_for(c) for c in self.categories] for s in specs], dtype=np.float64
        ).reshape(len(specs), len(self.categories))
        self.default_quality: F64 = np.array([s.quality["default"] for s in specs])

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[ModelSpec]:
        return (self.specs[n] for n in self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def get(self, name: str) -> ModelSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise UnknownModel(
                f"unknown model {echo(name)} (known: {self._known()})"
            ) from None

    def _known(self, limit: int = 20) -> str:
        """The registry's names for an error message, at most `limit` of them."""
        more = len(self.names) - limit
        return ", ".join(self.names[:limit]) + (f" and {more} more" if more > 0 else "")

    def check_known(self, names: frozenset[str], field: str) -> None:
        unknown = sorted(n for n in names if n not in self.specs)
        if unknown:
            raise UnknownModel(
                f"{field}: unknown model(s) {echo_list(unknown)} "
                f"(known: {self._known()})"
            )
