"""The response cache through the HTTP front door, with the official `openai` SDK (and raw
HTTP for what the SDK cannot send)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from routecore.config import load_config
from routecore.server.app import App

CHAT = [{"role": "user", "content": "How do I reverse a list in Python?"}]


@pytest.fixture
async def http_app(tmp_path: Path) -> AsyncIterator[App]:
    cfg = load_config(None)
    cfg = replace(cfg, extra={**cfg.extra, "cache": {
        "exact": {"ttl_s": 600}, "semantic": {"threshold": 0.9, "ttl_s": 600}}})
    app = App.from_config(cfg, access_log=False, feedback_db=str(tmp_path / "feedback.db"))
    await app.start("127.0.0.1", 0, http_port=0)
    yield app
    await app.stop(0.5)


@pytest.fixture
async def client(http_app: App) -> AsyncIterator[openai.AsyncOpenAI]:
    assert http_app.http is not None
    async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{http_app.http.port}/v1",
                                  api_key="unused", max_retries=0) as c:
        yield c


async def _create(client: openai.AsyncOpenAI, messages: list[dict[str, str]],
                  **kw: Any) -> tuple[Any, dict[str, str]]:
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=messages, **kw)  # type: ignore[arg-type]
    return raw.parse(), dict(raw.headers)


async def test_repeat_and_paraphrase_hit_with_the_outcome_in_body_and_header(
        client: openai.AsyncOpenAI) -> None:
    """A repeat is an exact hit and a paraphrase a semantic one; the body's routecore object
    and the x-routecore-cache header say so, with cost 0 and the saved USD."""
    first, h1 = await _create(client, CHAT)
    assert h1["x-routecore-cache"] == "none" and first.routecore["cache_hit"] == "none"
    again, h2 = await _create(client, CHAT)
    para, h3 = await _create(client, [{"role": "user",
                                       "content": "How can I reverse a Python list?"}])
    assert (h2["x-routecore-cache"], h3["x-routecore-cache"]) == ("exact", "semantic")
    for hit in (again, para):
        assert hit.choices[0].message.content == first.choices[0].message.content
        assert hit.routecore["cost_usd"] == 0
        assert hit.routecore["saved_usd"] == pytest.approx(first.routecore["cost_usd"])


async def test_options_in_the_body_and_headers(client: openai.AsyncOpenAI) -> None:
    """routecore.cache (body) and x-routecore-cache (header) set the policy; the body wins."""
    msgs = [{"role": "user", "content": "Name a prime number between 10 and 20."}]
    await _create(client, msgs)
    _, h = await _create(client, msgs, extra_headers={"x-routecore-cache": "bypass"})
    assert h["x-routecore-cache"] == "none"
    _, h = await _create(client, msgs, extra_body={"routecore": {"cache": "default"}},
                         extra_headers={"x-routecore-cache": "bypass"})
    assert h["x-routecore-cache"] == "exact"
    _, h = await _create(client, msgs, extra_body={"routecore": {"cache_max_age_s": 3600}})
    assert h["x-routecore-cache"] == "exact"
    _, h = await _create(client, msgs, temperature=0.8)
    assert h["x-routecore-cache"] == "none"


async def test_a_stream_is_served_from_the_cache_as_sse(client: openai.AsyncOpenAI) -> None:
    """A cached answer streams back as several SSE chunks equal to the stored text, the last
    one saying the hit and what it saved."""
    msgs = [{"role": "user", "content": "Describe the printing press and its effect on "
                                        "literacy in Europe."}]
    first, _ = await _create(client, msgs)
    stream = await client.chat.completions.create(model="auto", messages=msgs,  # type: ignore
                                                  stream=True)
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 2
    last = chunks[-1].model_extra or {}
    assert last["routecore"]["cache_hit"] == "exact" and last["routecore"]["cost_usd"] == 0
    assert last["routecore"]["saved_usd"] == pytest.approx(first.routecore["cost_usd"])


async def test_bad_cache_options_are_400_naming_the_field(http_app: App) -> None:
    """A bad policy or max age, in the body or a header, is a 400 naming where it was (in
    the message and in `param`)."""
    assert http_app.http is not None
    url = f"http://127.0.0.1:{http_app.http.port}/v1/chat/completions"
    cases: list[tuple[dict[str, Any], dict[str, str], str]] = [
        ({"cache": "sometimes"}, {}, "routecore.cache: must be one of"),
        ({"cache": 3}, {}, "routecore.cache: must be a string"),
        ({"cache_max_age_s": -5}, {}, "routecore.cache_max_age_s: must be in [0, "),
        ({"cache_max_age_s": 10**30}, {}, "routecore.cache_max_age_s: must be in [0, "),
        ({"cache_max_age_s": 1.5}, {}, "routecore.cache_max_age_s: must be an integer"),
        ({}, {"x-routecore-cache": "x" * 5000}, "header x-routecore-cache: must be one of"),
        ({}, {"x-routecore-cache-max-age-s": "-1"}, "header x-routecore-cache-max-age-s:"),
        ({}, {"x-routecore-cache-max-age-s": "9" * 4000}, "header x-routecore-cache-max-age-s:"),
    ]
    async with aiohttp.ClientSession() as s:
        for rc, headers, needle in cases:
            body = json.dumps({"model": "auto", "messages": CHAT, "routecore": rc})
            async with s.post(url, data=body, headers={"content-type": "application/json",
                                                       **headers}) as r:
                doc = json.loads(await r.read())
                assert r.status == 400, (rc, headers, doc)
                assert doc["error"]["message"].startswith(needle), doc
                assert doc["error"]["param"] == needle.split(":")[0].removeprefix("header ")
                assert len(doc["error"]["message"]) < 400
