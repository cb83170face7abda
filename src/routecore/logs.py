"""structlog, configured once at start-up by the CLI (libraries only call
`structlog.get_logger()`).

Call sites build an event dict; rendering and writing happen on a background
listener thread (stdlib QueueHandler -> QueueListener with structlog's
ProcessorFormatter), so a request never waits on JSON encoding or stderr.
JSON lines in production, the console renderer on a terminal. Fields whose
name looks like a secret are redacted before rendering.

`HotLog` is for the one line per request: its call site costs a level check
and a queue put; the listener stamps, redacts and renders the line exactly as
structlog would (structlog's chain at the call site cost ~10 us per line even
when the level dropped it, ~27 us of CPU when it did not).
"""

from __future__ import annotations

import atexit
import datetime
import logging
import logging.handlers
import queue
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_MARKERS = ("key", "token", "secret", "password", "authorization")
# Counts are not secrets even though their names contain "token".
_NOT_SECRET = ("input_tokens", "output_tokens", "tokens", "max_output_tokens")
_listener: logging.handlers.QueueListener | None = None
_queue: queue.SimpleQueue[Any] | None = None


class _PassThroughQueueHandler(logging.handlers.QueueHandler):
    """Enqueue the record untouched: the stdlib version formats it in the calling
    thread, which is the work this module moves off the request path."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class _HotLine:
    """An INFO event queued by `HotLog.info`, rendered by the listener thread."""

    __slots__ = ("created", "event", "fields", "logger")

    def __init__(self, created: float, logger: str, event: str, fields: dict[str, Any]) -> None:
        self.created, self.logger, self.event, self.fields = created, logger, event, fields


class HotLog:
    """INFO lines from a hot path: the call site checks the level and enqueues the
    fields as they are; the line reads like any other structlog line."""

    __slots__ = ("_logger", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger = logging.getLogger(name)

    def enabled(self) -> bool:
        """Whether an INFO line would be written (the stdlib level check is cached)."""
        return self._logger.isEnabledFor(logging.INFO)

    def info(self, event: str, fields: dict[str, Any]) -> None:
        """Log `event` with `fields` (which the caller must not change afterwards)."""
        q = _queue
        if q is None:  # configure_logging() was not called: the plain structlog path
            structlog.get_logger(self.name).info(event, **fields)
        elif self._logger.isEnabledFor(logging.INFO):
            q.put(_HotLine(time.time(), self.name, event, fields))


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """structlog's formatter, plus `_HotLine`s: the fields a structlog line would
    carry (level, logger, UTC ISO timestamp), redacted, through the same renderer."""

    def __init__(self, renderer: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._renderer = renderer

    def format(self, record: Any) -> str:
        if type(record) is not _HotLine:
            return str(super().format(record))
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        event = {**record.fields, "event": record.event, "level": "info", "logger": record.logger,
                 "timestamp": stamp.isoformat().replace("+00:00", "Z")}
        return str(self._renderer(None, "info", _redact(None, "info", event)))


def _is_secret(key: str) -> bool:
    lk = key.lower()
    return lk not in _NOT_SECRET and any(m in lk for m in _SECRET_MARKERS)


# Field name -> whether it is redacted: log lines reuse a few dozen names.
_SECRET: dict[str, bool] = {}


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    secret = _SECRET
    for k in event:
        hit = secret.get(k)
        if hit is None:
            hit = _is_secret(k)
            if len(secret) < 4096:  # bounded, should callers invent field names
                secret[k] = hit
        if hit:
            event[k] = "***"
    return event


def configure_logging(level: str = "info", json: bool | None = None) -> None:
    """Configure structlog and stdlib logging (grpc, aiohttp) once; idempotent."""
    global _listener, _queue
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
    formatter = _Formatter(
        renderer,
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
    _queue = q
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
    global _listener, _queue
    if _listener is not None:
        _listener.stop()
        _listener = None
        _queue = None
