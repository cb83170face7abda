"""Batch routing: many requests, one call, each decided exactly as `Router.route` would.

    results = route_batch(router, [RouteRequest(prompt=p) for p in prompts])
    for r in results:
        print(r.model if isinstance(r, Decision) else f"error: {r.status} {r.message}")

What is shared across the batch is done once: the hashed features of every
prompt in one core call (`_fast.extract_many`), the exemplar similarities of
every prompt in one matrix product, the models' health once. The rest (matchers, the policy kernel,
the explanation) runs per row, on the same code as a single decision, so a
batch decision equals the one `Route` gives.

A bad item never fails the others: its slot holds the `RoutecoreError` it
raised (InvalidRequest, NoModelAvailable, ...), in request order. The batch
itself is refused (InvalidRequest) when empty or longer than `MAX_BATCH`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import cast

from routecore.domain import Decision, RouteRequest
from routecore.errors import InvalidRequest, RoutecoreError
from routecore.routing.classifier import Features
from routecore.routing.router import Router

# Enough for thousands of prompts per call while a response without candidates
# (~400 bytes a decision) stays well inside gRPC's default 4 MB message limit.
MAX_BATCH = 5000
# With the per-candidate explanation a decision is ~1.5 KB for 16 models.
MAX_BATCH_EXPLAINED = 1000

BatchResult = Decision | RoutecoreError


def check_batch_size(n: int, explain: bool = False) -> None:
    """Raise InvalidRequest unless 1 <= n <= the cap (lower with explanations)."""
    if n == 0:
        raise InvalidRequest("requests: must not be empty")
    cap = MAX_BATCH_EXPLAINED if explain else MAX_BATCH
    if n > cap:
        what = "with explain" if explain else "per call"
        raise InvalidRequest(f"requests: {n} items exceeds the limit of {cap} {what}; "
                             "split the batch")


def route_batch(router: Router, requests: Sequence[RouteRequest], explain: bool = False,
                scope: Callable[[RouteRequest], RouteRequest] | None = None,
                scoped: list[RouteRequest] | None = None) -> list[BatchResult]:
    """A decision or the error it raised for each request, in order. `scope` (the
    server's auth) maps each request to what the caller may send, or raises;
    `scoped`, when given, receives the requests as routed (for the audit trail)."""
    check_batch_size(len(requests), explain)
    t0 = time.perf_counter_ns()
    out: list[BatchResult | None] = [None] * len(requests)
    ok: list[int] = []
    texts: list[str] = []
    reqs = scoped if scoped is not None else []
    reqs[:] = requests
    for i, req in enumerate(reqs):
        try:
            if scope is not None:
                req = reqs[i] = scope(req)
            router.validate(req)
        except RoutecoreError as exc:
            out[i] = exc
            continue
        ok.append(i)
        texts.append(req.text())
    if ok:
        vecs, scalars, tokens = router.extractor.extract_many(texts)
        classes = router.classifier.classify_many(texts, vecs, scalars)
        # Each decision's decision_micros is its own policy time plus an even share
        # of what the batch did once (validation, features, classification).
        unhealthy = router.health() or {}  # read once: the same for the whole batch
        shared = (time.perf_counter_ns() - t0) // len(ok)
        for j, i in enumerate(ok):
            start = time.perf_counter_ns() - shared
            try:
                out[i] = router.decide(reqs[i], texts[j], Features(vecs[j], scalars[j], int(tokens[j])),
                                       classes[j], start, unhealthy)
            except RoutecoreError as exc:
                out[i] = exc
    assert None not in out  # every slot got a decision or an error
    return cast(list[BatchResult], out)


def item_error(index: int, exc: RoutecoreError) -> str:
    """The message of item `index`'s error, naming the item."""
    return f"requests[{index}]: {exc.message}"[:1000]
