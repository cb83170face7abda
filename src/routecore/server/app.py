"""The gRPC server: Router service, health checking, reflection, graceful shutdown.

Health is NOT_SERVING until the router is built and the port is bound, and goes
NOT_SERVING again first thing on shutdown, so load balancers drain us before
`server.stop(grace)` lets in-flight calls finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from routecore.calling.completion import Completer
from routecore.calling.shadow import ShadowRunner
from routecore.config import Config, missing_api_keys
from routecore.errors import AddressInUse
from routecore.learned.outcomes import Outcomes
from routecore.routing.router import Router
from routecore.server.alerting import Alerting
from routecore.server.http_api import HttpFrontDoor
from routecore.server.identity import Authenticator, parse_auth
from routecore.server.interceptors import RpcInterceptor
from routecore.server.observing import Observer
from routecore.server.ports import ensure_free
from routecore.server.reload import Reloader, reload_on_sighup
from routecore.server.servicer import RouterServicer
from routecore.server.tls import server_credentials, ssl_context
from routecore.state import Backend, open_backend, parse_state
from routecore.state.budget import Budgets, check_keys, parse_budgets
from routecore.v1 import router_pb2, router_pb2_grpc

log = structlog.get_logger("routecore.server")
SERVICE_NAME = router_pb2.DESCRIPTOR.services_by_name["Router"].full_name


@dataclass
class App:
    """One serving process: the router, the gRPC server and its health state."""

    router: Router
    access_log: bool = True
    server: grpc.aio.Server | None = None
    health: health.aio.HealthServicer = field(default_factory=health.aio.HealthServicer)
    port: int = 0
    completer: Completer | None = None
    outcomes: Outcomes | None = None
    feedback_db: str | None = None  # overrides config feedback.path (tests)
    state: Backend | None = None  # the shared-state backend (config `state`), from start()
    http: HttpFrontDoor | None = None  # the OpenAI-compatible door (server.http_port)
    audit_db: str | None = None  # overrides config audit.path / postgres_dsn
    metrics_port: int | None = None  # overrides metrics.port (0: a free port)
    serve_metrics: bool = True  # False in extra --workers processes: one serves /metrics
    observer: Observer | None = None
    authenticator: Authenticator | None = None  # API keys (config `auth`); None: auth off
    budgets: Budgets | None = None  # config `budgets`, on `state`, from start()
    reuse_port: bool = False  # SO_REUSEPORT: only inside one --workers group (server/ports.py)
    servicer: RouterServicer | None = None
    retired: list[Completer] = field(default_factory=list)  # replaced by a reload; closed at stop
    # A retired completer's response cache is let go once no request can still use it.
    retiring: list[asyncio.Task[None]] = field(default_factory=list)
    shadow: ShadowRunner | None = None  # shadow evaluation (config `shadow`), from start()
    alerting: Alerting | None = None  # acts on quality regressions (server/alerting.py)
    reloader: Reloader | None = None  # SIGHUP and the Reload RPC (server/reload.py)

    @classmethod
    def from_config(cls, config: Config, access_log: bool = True,
                    feedback_db: str | None = None) -> App:
        return cls(router=Router.from_config(config), access_log=access_log,
                   feedback_db=feedback_db, authenticator=parse_auth(config))

    async def start(self, host: str | None = None, port: int | None = None,
                    http_port: int | None = None) -> int:
        """Bind and start; returns the bound port (pass 0 for an ephemeral one).

        `http_port` (else `server.http_port`; None: none) also serves the OpenAI-compatible
        HTTP front door over the same router, completer and outcomes.
        """
        cfg = self.router.config.server
        host = cfg.host if host is None else host
        port = cfg.port if port is None else port
        http_port = cfg.http_port if http_port is None else http_port
        options = [
            ("grpc.max_receive_message_length", cfg.max_message_bytes),
            ("grpc.max_send_message_length", cfg.max_message_bytes),
            ("grpc.so_reuseport", int(self.reuse_port)),
        ]
        # The state backend (its one Redis pool), providers and their HTTP pools belong to
        # this event loop: built here, closed in stop().
        extra = self.router.config.extra
        budgets_config = parse_budgets(extra.get("budgets"))
        check_keys(budgets_config, self.authenticator.key_ids() if self.authenticator else None)
        self.state = open_backend(parse_state(extra.get("state")))
        await self.state.start()
        self.budgets = Budgets(budgets_config, self.state)
        if self.budgets.enabled:
            self.router.budget_source = self.budgets.view
        self.completer = Completer(self.router.config, self.router, budgets=self.budgets,
                                   state=self.state)
        self.shadow = ShadowRunner(self.state)
        self.observer = Observer.start(self.router.config, self._breaker_states, self.budgets,
                                       audit_db=self.audit_db,
                                       metrics_port=self.metrics_port,
                                       serve_metrics=self.serve_metrics, shadow=self.shadow)
        self.shadow.record = self.observer.record
        self.completer.shadow = self.shadow
        self.alerting = Alerting.start(
            self.observer, lambda: self.completer.rollouts if self.completer else None)
        if self.observer.detector is not None:
            self.shadow.on_outcome.append(self.alerting.on_shadow)
        self.reloader = Reloader(self, self.router.config.source)
        server = grpc.aio.server(options=options)
        self.outcomes = Outcomes(self.router, self.feedback_db, state=self.state)
        await self.outcomes.start()
        self.servicer = RouterServicer(self.router, self.completer, self.outcomes, self.budgets)
        self.servicer.reloader = self.reloader
        record = self.observer.record
        if record is not None:  # batch items are audited when their job finishes
            self.servicer.batches.on_done = lambda done: record(
                "CompleteBatch", done.job.job_id, time.perf_counter(), "OK", None, done)
        RpcInterceptor(self.access_log, self.observer.record,
                       authenticator=self.authenticator).register(
            router_pb2_grpc.add_RouterServicer_to_server, self.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        # Reflection lists every RPC to anyone: off when auth is on, unless asked for.
        if cfg.reflection if cfg.reflection is not None else self.authenticator is None:
            reflection.enable_server_reflection(
                (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        address = f"{host}:{port}"
        try:
            bound: int = (server.add_secure_port(address, server_credentials(cfg.tls)) if cfg.tls
                          else server.add_insecure_port(address))
        except RuntimeError:  # grpc's "Failed to bind": say why, without a traceback
            bound = 0
        if bound == 0:
            await self._close_parts()
            ensure_free(host, port, "gRPC")
            raise AddressInUse(f"cannot serve gRPC on {address}")
        await server.start()
        self.server, self.port = server, bound
        if http_port is not None:
            self.http = HttpFrontDoor(self.router, self.completer, self.outcomes, self.access_log,
                                      self.observer.record if self.observer else None,
                                      self.authenticator)
            try:
                await self.http.start(host, http_port, cfg.grace_s, reuse_port=self.reuse_port,
                                      ssl_context=ssl_context(cfg.tls) if cfg.tls else None)
            except OSError as exc:
                self.http = None
                await self.stop(0)
                raise AddressInUse(f"cannot serve HTTP on {host}:{http_port}: "
                                   f"{exc.strerror or exc}") from None
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", host=host, port=bound, models=len(self.router.registry),
                 http_port=self.http.port if self.http is not None else None,
                 tls="mtls" if cfg.tls and cfg.tls.client_ca else bool(cfg.tls),
                 auth=(f"{len(self.authenticator)} API keys" if self.authenticator else "off"),
                 router_version=self.router.version, pid=os.getpid())
        for warning in missing_api_keys(self.router.config):
            log.warning("api_key_missing", problem=warning)
        return bound

    async def stop(self, grace: float | None = None) -> None:
        """Drain: health NOT_SERVING, stop accepting, let in-flight calls finish."""
        if self.server is None:
            return
        await self.health.enter_graceful_shutdown()
        grace = self.router.config.server.grace_s if grace is None else grace
        log.info("draining", grace_s=grace)
        if self.http is not None:  # /readyz says 503 while both doors drain together
            self.http.ready = False
            await asyncio.gather(self.server.stop(grace), self.http.stop())
            self.http = None
        else:
            await self.server.stop(grace)
        self.server = None
        await self._close_parts()
        log.info("stopped")

    def _breaker_states(self) -> dict[str, str]:
        """The serving completer's breakers (a reload replaces the completer)."""
        return self.completer.breaker_states() if self.completer is not None else {}

    def swap(self, router: Router, completer: Completer) -> None:
        """Point every holder at a reloaded router and completer (server/reload.py), in one
        synchronous step; requests already running finish on the old ones, and batch jobs
        already submitted are polled through the providers they were submitted to."""
        old = self.completer
        if old is not None:
            self.retired.append(old)
            # Its cache (up to the memory store's answers and a semantic index) would live
            # until stop, once per reload; its providers stay: batch jobs poll through them.
            self.retiring = [t for t in self.retiring if not t.done()]
            self.retiring.append(asyncio.ensure_future(_drop_cache_later(old)))
        completer.shadow = self.shadow
        self.router, self.completer = router, completer
        for holder in (self.servicer, self.http):
            if holder is not None:
                holder.router, holder.completer = router, completer
        if self.servicer is not None:
            self.servicer.batches.rebind(router.config, router, completer.providers)
        if self.outcomes is not None:
            self.outcomes.router = router

    async def _close_parts(self) -> None:
        """Close what start() opened besides the server (also when binding failed)."""
        if self.shadow is not None:  # first: its evaluations use the completers and state
            await self.shadow.aclose()
            self.shadow = None
        for task in self.retiring:
            task.cancel()
        for task in self.retiring:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.retiring.clear()
        if self.servicer is not None:
            await self.servicer.batches.aclose()
        while self.retired:
            await self.retired.pop().aclose()
        if self.completer is not None:
            await self.completer.aclose()
            self.completer = None
        if self.outcomes is not None:
            await self.outcomes.aclose()
            self.outcomes = None
        if self.budgets is not None:
            await self.budgets.aclose()
            self.budgets = None
        if self.state is not None:
            await self.state.aclose()
            self.state = None
        if self.alerting is not None:  # before the recorder's last flush: its alerts are stored
            await self.alerting.aclose()
            self.alerting = None
        if self.observer is not None:  # after the drain: in-flight calls are recorded too
            await self.observer.aclose()
            self.observer = None

    async def wait(self) -> None:
        if self.server is not None:
            await self.server.wait_for_termination()


async def _drop_cache_later(completer: Completer) -> None:
    """Drop a retired completer's response cache once every request it started has ended
    (each ends within its total_timeout_s, plus a margin)."""
    await asyncio.sleep(completer.settings.resilience.total_timeout_s + 1.0)
    await completer.drop_cache()


async def serve(config: Config, host: str | None = None, port: int | None = None,
                http_port: int | None = None, *, metrics_port: int | None = None,
                serve_metrics: bool = True, reuse_port: bool = False,
                peers: Sequence[int] = ()) -> None:
    """Run until SIGINT/SIGTERM (which flushes the audit trail); a second signal exits at once.
    SIGHUP reloads the config file (server/reload.py), in `peers` (--workers) too."""
    app = App.from_config(config)
    app.metrics_port, app.serve_metrics = metrics_port, serve_metrics
    app.reuse_port = reuse_port
    await app.start(host, port, http_port)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal() -> None:
        if stopping.is_set():
            log.warning("second signal: exiting now")
            os._exit(1)
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    if app.reloader is not None:
        app.reloader.peers = tuple(peers)
    if not config.source.startswith("<"):  # a file to re-read (not the built-in defaults)
        reload_on_sighup(app, config.source, peers)
    waiter = asyncio.ensure_future(app.wait())
    stopper = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    await app.stop()
    for task in (waiter, stopper):
        task.cancel()
