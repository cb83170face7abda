"""The semantic cache's vectors: one FAISS index per tenant, in this process.

    index = SemanticIndex(dim=128, max_entries=10_000)
    index.add(entry)                                   # a state/cache.py SemanticEntry
    for sim, entry in index.search("acme", vector, k=8): ...

Vectors are L2-normalised, so inner product is cosine similarity. A tenant's
index is exact (`IndexFlatIP`) while it holds fewer than `HNSW_FROM` vectors and
an HNSW graph past that (approximate, search time grows with log n; no training
step, so entries can arrive one by one from the shared log). Neither removes
well, so expired entries are left in place and skipped on search; when the dead
crowd a search's nearest, or a tenant passes `max_entries`, its index is rebuilt
from its newest live entries (three quarters of the cap, so rebuilds stay rare).
Past `max_total` entries in all, the tenant that stored least recently is
dropped whole. One tenant never searches another's index.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from routecore.state.cache import SemanticEntry

HNSW_FROM = 4_096  # flat search of 4k x 128 floats is ~0.1 ms; past it a graph wins
HNSW_M = 32


class _Tenant:
    __slots__ = ("entries", "index")

    def __init__(self, index: Any) -> None:
        self.index = index
        self.entries: list[SemanticEntry] = []


class SemanticIndex:
    """Per-tenant vector indexes; entries older than `ttl_s` (by `clock`) never match."""

    def __init__(self, dim: int, ttl_s: float, max_entries: int,
                 clock: Callable[[], float], max_total: int | None = None) -> None:
        import faiss  # when a semantic cache is configured, never at import

        self._faiss = faiss
        self.dim = dim
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        # All tenants together: past it, the tenant that stored least recently is dropped
        # (many tenants must not add up to unbounded memory).
        self.max_total = max_total if max_total is not None else max_entries * 8
        self.clock = clock
        self._tenants: OrderedDict[str, _Tenant] = OrderedDict()  # least recent add first
        self._total = 0

    def __len__(self) -> int:
        return self._total

    def kind(self, tenant: str) -> str:
        """"flat", "hnsw" or "" (no index yet): which index serves `tenant`."""
        t = self._tenants.get(tenant)
        if t is None:
            return ""
        return "hnsw" if isinstance(t.index, self._faiss.IndexHNSWFlat) else "flat"

    def add(self, entry: SemanticEntry) -> None:
        if entry.vector.shape != (self.dim,):
            return  # another embedding's vector (a replica on another version)
        t = self._tenants.get(entry.tenant)
        if t is None:
            t = self._tenants[entry.tenant] = _Tenant(self._new(1))
        else:
            self._tenants.move_to_end(entry.tenant)
        t.entries.append(entry)
        self._total += 1
        t.index.add(entry.vector.reshape(1, -1).astype(np.float32, copy=False))
        if (len(t.entries) >= HNSW_FROM and self.kind(entry.tenant) == "flat") or \
                len(t.entries) > self.max_entries:
            self._rebuild(entry.tenant, t)
        while self._total > self.max_total and len(self._tenants) > 1:
            _, old = self._tenants.popitem(last=False)
            self._total -= len(old.entries)

    def search(self, tenant: str, vector: npt.NDArray[np.float32], k: int = 8,
               ) -> list[tuple[float, SemanticEntry]]:
        """Up to k live entries of `tenant`, most similar first, as (cosine, entry)."""
        t = self._tenants.get(tenant)
        if t is None or not t.entries:
            return []
        kk = min(len(t.entries), k * 2)  # room for expired ones among the nearest
        sims, ids = t.index.search(vector.reshape(1, -1).astype(np.float32, copy=False), kk)
        cutoff = self.clock() - self.ttl_s
        out: list[tuple[float, SemanticEntry]] = []
        dead = 0
        for sim, i in zip(sims[0].tolist(), ids[0].tolist(), strict=True):
            if i < 0:
                continue
            e = t.entries[i]
            if e.stored_at <= cutoff:
                dead += 1
                continue
            out.append((float(sim), e))
            if len(out) >= k:
                break
        if dead * 2 > kk:  # mostly expired around here: compact this tenant
            self._rebuild(tenant, t)
        return out

    def _new(self, n: int) -> Any:
        if n >= HNSW_FROM:
            return self._faiss.IndexHNSWFlat(self.dim, HNSW_M, self._faiss.METRIC_INNER_PRODUCT)
        return self._faiss.IndexFlatIP(self.dim)

    def _rebuild(self, tenant: str, t: _Tenant) -> None:
        cutoff = self.clock() - self.ttl_s
        # Keep 3/4 of the cap, so the next rebuild is a quarter of the cap away.
        live = [e for e in t.entries if e.stored_at > cutoff][-(self.max_entries * 3 // 4 or 1):]
        self._total -= len(t.entries) - len(live)
        if not live:
            del self._tenants[tenant]
            return
        fresh = _Tenant(self._new(len(live)))
        fresh.entries = live
        fresh.index.add(np.stack([e.vector for e in live]).astype(np.float32, copy=False))
        self._tenants[tenant] = fresh  # keeps its place in the recency order
