"""Calling the models: completion, cascade, ensemble, resilience, deadlines and providers.

Built on `routecore.routing`, which decides; this package makes the call.
"""
