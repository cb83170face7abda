"""Hot reload: SIGHUP, or the admin `Reload` RPC (`routecore reload`), re-reads the
config file, validates it, and swaps it in at once.

A reload replaces the routing and calling side (models and their pinned
versions, deployments and weights, categories, routing, resilience, cascade,
ensemble, ab, rollout, learned artifacts): a new `Router` and `Completer` are
built off to the side (the router in a worker thread, so serving goes on), then
every holder is pointed at them in one synchronous step on the event loop, so
no request sees half of each. A request already running keeps the router and
completer it started with and completes on them; their HTTP pools are closed at
shutdown. New batch jobs are routed and priced by the new config; a job already
submitted is polled and settled as it was submitted. Breaker gauges follow the
new completer. API keys (`auth`, and the `auth.keys_file` it names, re-read) are
swapped in too, so a revoked key stops working without a restart; turning auth
on or off needs one. Sections bound at start-up (sockets, TLS, state, budgets,
audit, metrics, telemetry, feedback, alerts) cannot change without a restart: a
reload that changes one is rejected naming it. A rejected reload (invalid file
or such a change) logs `config_reload_rejected` with every problem, raises
ConfigError (the RPC answers FAILED_PRECONDITION naming each field), and the
old config keeps serving. A reload also restarts a rollout (its schedule, and a
rollout a regression stopped) and acknowledges quality regression alarms.

One reload runs at a time per process (SIGHUP and RPC share a lock). With
--workers, a SIGHUP is passed on to the other workers; the RPC reaches one
worker, which reloads itself and then sends SIGHUP to the others (each reports
its own outcome in its log).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from routecore.calling.completion import Completer
from routecore.config import Config, load_config
from routecore.errors import ConfigError
from routecore.routing.router import Router
from routecore.server.identity import parse_auth

if TYPE_CHECKING:
    from routecore.server.app import App

log = structlog.get_logger("routecore.server.reload")
RESTART_ONLY = ("state", "budgets", "audit", "metrics", "telemetry", "feedback", "alerts")


@dataclass(frozen=True, slots=True)
class Reloaded:
    """The outcome of a reload that was not rejected."""

    applied: bool  # False: a dry run
    path: str
    router_version: str
    models: int
    rollout: str  # Rollouts.describe() of the new config
    peers_signalled: int = 0
    alarms_cleared: int = 0


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """Problems naming each start-up-bound section the new config changes."""
    problems = [f"{s}: changed, which needs a restart (reload keeps the running {s})"
                for s in RESTART_ONLY if old.extra.get(s) != new.extra.get(s)]
    if old.server != new.server:
        problems.append("server: changed, which needs a restart (reload keeps the running server)")
    return problems


class Reloader:
    """Reloads of one app from its config file, one at a time."""

    def __init__(self, app: App, path: str, peers: Sequence[int] = ()) -> None:
        self.app = app
        self.path = path
        self.peers = tuple(peers)  # the other --workers processes
        self.lock = asyncio.Lock()

    async def reload(self, dry_run: bool = False, signal_peers: bool = False) -> Reloaded:
        """Re-read and swap in (or with `dry_run` only validate); raises ConfigError."""
        if self.path.startswith("<"):
            raise ConfigError([f"config: the server runs on {self.path}, not a file: there "
                               "is nothing to re-read (start it with --config FILE)"])
        async with self.lock:
            done = await _reload(self.app, self.path, dry_run)
        if signal_peers and done.applied and self.peers:
            for pid in self.peers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGHUP)
            done = Reloaded(done.applied, done.path, done.router_version, done.models,
                            done.rollout, len(self.peers), done.alarms_cleared)
        return done


async def _reload(app: App, path: str, dry_run: bool) -> Reloaded:
    if app.completer is None:
        raise RuntimeError("reload before start")
    try:
        config = await asyncio.to_thread(load_config, path)
        problems = restart_only_changes(app.router.config, config)
        auth = parse_auth(config)
        if (auth is None) != (app.authenticator is None):
            problems.append("auth: turned on or off, which needs a restart")
        if problems:
            raise ConfigError(problems)
        router = await asyncio.to_thread(Router.from_config, config)
        completer = Completer(config, router, budgets=app.budgets, state=app.state)
    except ConfigError as exc:
        log.error("config_reload_rejected", path=path, problems=exc.problems)
        raise
    rollout = completer.rollouts.describe()
    if dry_run:
        await completer.aclose()
        return Reloaded(False, path, router.version, len(router.registry), rollout)
    if app.budgets is not None and app.budgets.enabled:
        router.budget_source = app.budgets.view
    app.swap(router, completer)
    if auth is not None and app.authenticator is not None:
        app.authenticator.take_keys(auth)
    cleared = app.alerting.reloaded(config) if app.alerting is not None else 0
    log.info("config_reloaded", path=path, router_version=router.version,
             models=len(router.registry), rollout=rollout or None, alarms_cleared=cleared)
    return Reloaded(True, path, router.version, len(router.registry), rollout,
                    alarms_cleared=cleared)


async def reload_config(app: App, path: str) -> bool:
    """Re-read `path` and swap it into `app`; False (old config kept) when rejected."""
    lock = app.reloader.lock if app.reloader is not None else asyncio.Lock()
    try:
        async with lock:
            await _reload(app, path, dry_run=False)
    except ConfigError:
        return False
    return True


def reload_on_sighup(app: App, path: str, peers: Sequence[int] = ()) -> None:
    """SIGHUP reloads `path` (one reload at a time; another SIGHUP meanwhile waits its turn)
    and is passed on to `peers` (the other --workers processes), so each reloads itself."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def run() -> None:
        await reload_config(app, path)

    def on_hup() -> None:
        for pid in peers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)
        task = loop.create_task(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
