"""Alert webhook delivery (calling/webhook.py) against hostile receivers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from routecore.calling.webhook import Webhook
from routecore.errors import ProviderError


@pytest.fixture
async def endless() -> AsyncIterator[str]:
    """A receiver that accepts the alert (200) and then streams a body without end."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(status=200)
        await resp.prepare(request)
        chunk = b"x" * 65536
        while True:
            await resp.write(chunk)

    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


async def test_a_huge_or_endless_answer_is_not_read(endless: str) -> None:
    """The status says whether the alert arrived: an answer's body is not read (an endless
    one used to be read into memory until the timeout, and the delivery then failed)."""
    hook = Webhook(endless, timeout_s=2.0, retries=0)
    try:
        await asyncio.wait_for(hook.send({"event": "quality_regression"}), 10)
    except ProviderError as exc:
        pytest.fail(f"delivered alert reported as failed: {exc.message}")
    finally:
        await hook.aclose()
    assert (hook.delivered, hook.failed, hook.tries) == (1, 0, 1)
