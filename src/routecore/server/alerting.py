"""Acting on a detected quality regression, in one serving process.

The detector (observe/regression.py) calls `on_alarm` from the audit writer's
thread (or the event loop, for signals given to `Detector.observe`); the
handling hops onto the event loop and there, in one step:

1. the rollout: when the regressed version is the one being rolled out, it is
   rolled back (share 0 at once; `alerts.rollback: false` holds its share
   instead), logged as `rollout_rolled_back` / `rollout_held`, counted;
2. a structured `quality_regression` log event with the evidence;
3. `routecore_quality_regression{model,version,category}` set to 1 and the
   counter bumped (with metrics on);
4. an `Alert` audit record, so `routecore audit summary` shows it;
5. the webhook (`alerts.webhook_url`), delivered by a background task with
   retries (calling/webhook.py): no request waits for it.

A reload acknowledges alarms (`reloaded`): it clears them and their gauges, and
their streams learn their baseline again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog

from routecore.calling.rollout import Rollouts
from routecore.calling.webhook import Webhook
from routecore.config import Config
from routecore.errors import ProviderError
from routecore.observe import alerts
from routecore.observe.regression import Alarm
from routecore.observe.shadow import ShadowOutcome
from routecore.server.observing import Observer

log = structlog.get_logger("routecore.alerts")
MAX_PENDING = 100  # webhook deliveries in flight; beyond, an alert is logged but not sent


class Alerting:
    def __init__(self, observer: Observer, rollouts: Callable[[], Rollouts | None],
                 webhook: Webhook | None = None) -> None:
        self.observer = observer
        self.settings = observer.alerts
        self._rollouts = rollouts  # the current completer's (a reload replaces it)
        self.webhook = webhook
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self.handled: list[dict[str, Any]] = []  # the last alerts, newest last (tests, status)
        if observer.detector is not None:
            observer.detector.on_alarm = self.on_alarm

    @classmethod
    def start(cls, observer: Observer, rollouts: Callable[[], Rollouts | None]) -> Alerting:
        s = observer.alerts
        webhook = Webhook(s.webhook_url, timeout_s=s.webhook_timeout_s,
                          retries=s.webhook_retries) if s.webhook_url else None
        return cls(observer, rollouts, webhook)

    def on_shadow(self, outcome: ShadowOutcome) -> None:
        """A shadow evaluation's judged score of the live answer, as a `shadow` signal of the
        version that gave it (the rolled-out one when this process served the request)."""
        detector = self.observer.detector
        if detector is None or outcome.status != "OK" or outcome.routed_score is None:
            return
        version = detector.served_version(outcome.request_id, outcome.routed_model) \
            or outcome.routed_model_version
        detector.observe(model=outcome.routed_model, version=version,
                         router_version=outcome.router_version, category=outcome.category,
                         kind="shadow", value=min(1.0, max(0.0, outcome.routed_score)))

    def on_alarm(self, alarm: Alarm) -> None:
        """Any thread: hand the alarm to the event loop."""
        with contextlib.suppress(RuntimeError):  # the loop closed: the process is ending
            self._loop.call_soon_threadsafe(self.handle, alarm)

    def handle(self, alarm: Alarm) -> dict[str, Any]:
        """On the loop: roll back or hold the rollout, log, count, record, notify."""
        action, reason = "none", ""
        rollouts = self._rollouts()
        if rollouts is not None:
            why = f"{alarm.kind} regression in {alarm.category}: {alarm.message()}"
            stopped = rollouts.stop(alarm.model, alarm.version, why[:500],
                                    roll_back=self.settings.rollback)
            if stopped is not None:
                action = stopped.state
                reason = ("rollout rolled back to the pinned version" if action == "rolled_back"
                          else f"rollout held at {stopped.share * 100:.1f}%")
                log.warning(f"rollout_{action}", model=alarm.model, version=alarm.version,
                            share=stopped.share, reason=why)
                if self.observer.alert_metrics is not None:
                    self.observer.alert_metrics.rollback(alarm.model, alarm.version)
        doc = alerts.document(alarm, action, reason)
        log.error("quality_regression", **{k: v for k, v in doc.items() if k != "event"})
        if self.observer.alert_metrics is not None:
            self.observer.alert_metrics.alarm(alarm)
        if self.observer.recorder is not None:
            self.observer.recorder.add_record(alerts.record(alarm, action, reason))
        self.handled = [*self.handled[-99:], doc]
        if self.webhook is not None:
            if len(self._tasks) < MAX_PENDING:
                task = self._loop.create_task(self._deliver(self.webhook, doc))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                log.error("alert_webhook_skipped", reason=f"{MAX_PENDING} deliveries pending")
        return doc

    async def _deliver(self, webhook: Webhook, doc: dict[str, Any]) -> None:
        try:
            await webhook.send(doc)
        except ProviderError as exc:
            log.error("alert_webhook_failed", error=exc.message, tries=webhook.tries,
                      model=doc["model"], version=doc["version"])
        else:
            log.info("alert_webhook_delivered", model=doc["model"], version=doc["version"])

    def reloaded(self, config: Config) -> int:
        """A config reload: new versions and pins, alarms acknowledged; returns how many."""
        detector = self.observer.detector
        if detector is None:
            return 0
        detector.use_config(config)
        cleared = detector.reset()
        if self.observer.alert_metrics is not None:
            for alarm in cleared:
                self.observer.alert_metrics.cleared(alarm)
        return len(cleared)

    async def aclose(self, grace_s: float = 5.0) -> None:
        """Give pending deliveries `grace_s` to finish, then cancel them; close the session."""
        if self.observer.detector is not None:
            self.observer.detector.on_alarm = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.webhook is not None:
            await self.webhook.aclose()
