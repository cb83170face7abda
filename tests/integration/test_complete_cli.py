"""`routecore complete` against a running server: the answer on stdout, a summary on stderr,
and a clear one-line error (no traceback) when the server is not there."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from routecore.cli import main
from routecore.server.app import App


async def test_complete_prints_the_answer_and_a_summary(
        app: App, capsys: pytest.CaptureFixture[str]) -> None:
    """The answer goes to stdout, model/cost/request id to stderr; --stream and --json work."""
    addr = f"127.0.0.1:{app.port}"
    assert await asyncio.to_thread(main, ["complete", "--addr", addr, "--strategy", "cost",
                                          "Write a haiku about rain."]) == 0
    out, err = capsys.readouterr()
    assert out.strip() and err.startswith("[") and "request " in err and "$" in err
    assert await asyncio.to_thread(main, ["complete", "--addr", addr, "--stream",
                                          "Write a haiku about rain."]) == 0
    streamed, err = capsys.readouterr()
    assert streamed.strip() and "request " in err
    assert await asyncio.to_thread(main, ["complete", "--addr", addr, "--json", "--allow",
                                          "gpt-4o-mini", "What is 2+2?"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "gpt-4o-mini" and doc["usage"]["output_tokens"] > 0


async def test_complete_errors_are_one_line(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad request prints the status and message; no server prints a hint; neither a traceback."""
    addr = f"127.0.0.1:{app.port}"
    assert await asyncio.to_thread(main, ["complete", "--addr", addr, "--max-cost", "-1",
                                          "hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("routecore: INVALID_ARGUMENT: constraints.max_cost_usd")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert await asyncio.to_thread(main, ["complete", "--addr", f"127.0.0.1:{free}",
                                          "--timeout", "2", "hi"]) == 2
    err = capsys.readouterr().err
    assert "UNAVAILABLE" in err and "is `routecore serve` running" in err
    assert "Traceback" not in err
