"""The /metrics endpoint: Prometheus text from prometheus-client's own HTTP server
(a daemon thread, off the event loop).

With `--workers N` the CLI points PROMETHEUS_MULTIPROC_DIR at a fresh directory
before any worker starts; every worker's metrics then live in files there, and
the one process that serves /metrics reads them all (MultiProcessCollector),
so one scrape sees every worker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

# prometheus-client is imported inside the functions: it picks multiprocess mode when
# first imported, so the CLI must be able to set the directory before that.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def metrics_registry() -> CollectorRegistry | None:
    """Where this process registers its metrics: None in multiprocess mode."""
    from prometheus_client import CollectorRegistry

    return None if multiprocess_dir() else CollectorRegistry()


@dataclass
class MetricsServer:
    server: Any
    thread: threading.Thread
    port: int

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_metrics_server(host: str, port: int, registry: CollectorRegistry | None) -> MetricsServer:
    """Serve /metrics on host:port (0: a free port); multiprocess mode reads every worker."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client import multiprocess as mp

    if registry is None:
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry, path=multiprocess_dir())  # type: ignore[no-untyped-call]
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread, int(server.server_address[1]))


def mark_worker_dead(pid: int | None) -> None:
    """Drop a finished worker's live gauges (multiprocess mode)."""
    if pid is not None and multiprocess_dir():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid)  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def multiprocess_metrics(enabled: bool) -> Iterator[Callable[[int | None], None]]:
    """With `enabled`, a fresh PROMETHEUS_MULTIPROC_DIR for this process and the workers
    it spawns (set before prometheus-client is imported anywhere), removed at exit.
    Yields the function that drops a finished worker's live gauges."""
    if not enabled or multiprocess_dir():
        yield mark_worker_dead
        return
    path = tempfile.mkdtemp(prefix="routecore-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield mark_worker_dead
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)
