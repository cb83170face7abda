"""Routing: from a request to a decision (tokens, features, classifier, registry, policy, router).

Nothing here calls a provider or holds cross-replica state; `routecore.calling`
builds on it, and `routecore.state` / `routecore._fast` sit below it.
"""
