"""Upstream LLM providers behind one interface (`Provider`), built from the config's endpoints."""

from __future__ import annotations

from collections.abc import Mapping

from routecore.calling.providers.anthropic import AnthropicProvider
from routecore.calling.providers.base import Provider, ProviderCall, ProviderResponse, StreamChunk
from routecore.calling.providers.batch_api import BatchAPI, OpenAIBatchAPI
from routecore.calling.providers.openai import OpenAIProvider
from routecore.calling.providers.pool import HttpPool
from routecore.calling.providers.simulated import SimEngine, SimulatedProvider
from routecore.config import Config, Endpoint

__all__ = ["AnthropicProvider", "BatchAPI", "HttpPool", "OpenAIProvider", "Provider", "ProviderCall",
           "ProviderResponse", "SimEngine", "SimulatedProvider", "StreamChunk", "batch_api",
           "build_providers"]


def batch_api(provider: Provider) -> BatchAPI | None:
    """The endpoint's batch API: the simulated provider's, or /v1/batches on an OpenAI-compatible
    endpoint with option `batch_api: true`; None when it has none."""
    if isinstance(provider, SimulatedProvider):
        return provider.batch_api
    if isinstance(provider, OpenAIProvider) and provider.endpoint.options.get("batch_api"):
        return OpenAIBatchAPI(provider)
    return None


def build_provider(endpoint: Endpoint, pool: HttpPool, engine: SimEngine) -> Provider:
    """One provider for one endpoint; API keys are read here, at startup."""
    if endpoint.kind == "openai":
        return OpenAIProvider(endpoint, pool)
    if endpoint.kind == "anthropic":
        return AnthropicProvider(endpoint, pool)
    return SimulatedProvider(endpoint, engine)


def build_providers(config: Config, pool: HttpPool,
                    engine: SimEngine | None = None) -> Mapping[str, Provider]:
    """A provider per configured endpoint, keyed by endpoint name."""
    engine = engine or SimEngine(config)
    return {name: build_provider(ep, pool, engine) for name, ep in config.endpoints.items()}
