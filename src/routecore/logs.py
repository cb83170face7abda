"""structlog, configured once at start-up by the CLI (libraries only call
`structlog.get_logger()`).

Call sites build an event dict; rendering and writing happen on a background
listener thread (stdlib QueueHandler -> QueueListener with structlog's
ProcessorFormatter), so a request never waits on JSON encoding or stderr.
JSON lines in production, the console renderer on a terminal. Fields whose
name looks like a secret are redacted before rendering.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_MARKERS = ("key", "token", "secret", "password", "authorization")
# Counts are not secrets even though their names contain "token".
_NOT_SECRET = ("input_tokens", "output_tokens", "tokens", "max_output_tokens")
_listener: logging.handlers.QueueListener | None = None


class _PassThroughQueueHandler(logging.handlers.QueueHandler):
    """Enqueue the record untouched: the stdlib version formats it in the calling
    thread, which is the work this module moves off the request path."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k in list(event):
        lk = k.lower()
        if lk not in _NOT_SECRET and any(m in lk for m in _SECRET_MARKERS):
            event[k] = "***"
    return event


def configure_logging(level: str = "info", json: bool | None = None) -> None:
    """Configure structlog and stdlib logging (grpc, aiohttp) once; idempotent."""
    global _listener
    if _listener is not None:
        return
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    renderer: Any = (structlog.processors.JSONRenderer() if json
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    )
    sink = logging.StreamHandler(sys.stderr)
    sink.setFormatter(formatter)
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    root = logging.getLogger()
    root.handlers[:] = [_PassThroughQueueHandler(q)]
    root.setLevel(level.upper())
    _listener = logging.handlers.QueueListener(q, sink, respect_handler_level=False)
    _listener.start()
    atexit.register(flush_logging)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def flush_logging() -> None:
    """Drain and stop the listener thread (on shutdown)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None
