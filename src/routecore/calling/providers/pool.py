"""HTTP session pool: one long-lived aiohttp ClientSession per upstream endpoint.

Sessions are created lazily, on first use inside the running event loop (never
at import or construction), and closed by `aclose()` on shutdown.
"""

from __future__ import annotations

import asyncio

import aiohttp

from routecore.config import Endpoint


class HttpPool:
    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._closed = False

    def session(self, endpoint: Endpoint) -> aiohttp.ClientSession:
        """The endpoint's session, created on first use in the running loop."""
        if self._closed:
            raise RuntimeError("HttpPool is closed")
        s = self._sessions.get(endpoint.name)
        if s is None or s.closed:
            asyncio.get_running_loop()  # sessions belong to a running loop
            connector = aiohttp.TCPConnector(limit=endpoint.max_connections,
                                             limit_per_host=endpoint.max_connections,
                                             ttl_dns_cache=300, enable_cleanup_closed=False)
            s = aiohttp.ClientSession(connector=connector, raise_for_status=False,
                                      timeout=aiohttp.ClientTimeout(total=endpoint.timeout_s),
                                      headers={"user-agent": "routecore"})
            self._sessions[endpoint.name] = s
        return s

    async def aclose(self) -> None:
        self._closed = True
        sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            await s.close()

    def __repr__(self) -> str:
        return f"HttpPool(endpoints={sorted(self._sessions)})"
