"""Outcomes: what was decided, and how well it went.

One owner for three things that follow a decision:
- recent decisions, on the state backend (state/decisions.py: this process's
  memory, or Redis so a Feedback may reach any replica), so feedback can name a
  request id instead of repeating the prompt. A decision belongs to its owner
  (the caller's tenant when auth is on): another owner's lookup is NOT_FOUND,
  exactly as for an id that never existed, and a caller-chosen id never
  replaces a recorded one;
- the A/B decision log, never on the response path: on memory written to the
  feedback database by background tasks (tracked, awaited on shutdown); on
  Redis, added to the fleet's totals per experiment (state/ab.py);
- feedback: validated, stored durably (SQLite, `feedback.path`), and learned
  online by the serving learned routers, so later decisions change at once.
  What is learned is kept as totals on the state backend (state/learning.py):
  with Redis every replica applies the same totals (it follows the others'
  learning within `LEARN_POLL_S`) and they survive restarts; with memory the
  feedback stored since the artifact was trained is learned again at start.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from routecore.domain import Decision, check_request_id
from routecore.errors import InvalidRequest, NotFound, StateUnavailable, echo
from routecore.learned.ab import DecisionLog, experiment_id
from routecore.learned.feedback import FeedbackStore, default_path, feedback_path
from routecore.routing.learned_model import LearnedRouter
from routecore.routing.router import Router
from routecore.state.ab import RedisABTotals
from routecore.state.backend import Backend, MemoryBackend, RedisBackend
from routecore.state.decisions import RECENT, RECENT_CHARS, Recent, open_decisions
from routecore.state.learning import open_learning

log = structlog.get_logger("routecore.learned.outcomes")

LEARN_POLL_S = 1.0  # Redis: how often a replica looks for what the others learned


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    feedback_id: str
    learned: bool


def artifact_id(lr: LearnedRouter) -> str:
    """Names one artifact's learning: changes with the artifact, so a new one starts fresh."""
    doc = json.dumps([lr.manifest, lr.models, lr.tasks, lr.dim], sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


class Outcomes:
    """Outcome recording for one serving process; `start()` it, `aclose()` on shutdown."""

    def __init__(self, router: Router, db_path: str | Path | None = None,
                 capacity: int = RECENT, max_chars: int = RECENT_CHARS,
                 state: Backend | None = None) -> None:
        self.router = router
        path = db_path or feedback_path(router.config.extra) or default_path()
        self.store = FeedbackStore(path)
        self.decisions = DecisionLog(path)
        backend = state if state is not None else MemoryBackend()
        self.recent = open_decisions(backend, capacity, max_chars)
        self.learning = open_learning(backend)
        self._shared = isinstance(backend, RedisBackend)
        # A/B: fleet totals in Redis; on memory, the log in the feedback database.
        self.ab = RedisABTotals(backend) if isinstance(backend, RedisBackend) else None
        self.experiment = experiment_id(router.config)
        self._applied: dict[str, int] = {}  # artifact id -> learning version applied here
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _learners(self) -> list[tuple[str, LearnedRouter]]:
        return [(artifact_id(lr), lr) for lr in (self.router.learned, self.router.candidate)
                if isinstance(lr, LearnedRouter)]

    async def start(self) -> None:
        """Learn again what was learned before this start, and follow the other replicas."""
        if not self._learners():
            return
        if self._shared:
            with contextlib.suppress(StateUnavailable):  # logged; the poller catches up later
                await self._refresh()
            self._poller = asyncio.get_running_loop().create_task(self._poll())
        else:
            await self._replay()

    async def _refresh(self) -> None:
        """Apply the shared totals of each learned router whose version moved."""
        for aid, lr in self._learners():
            version = await self.learning.version(aid)
            if version != self._applied.get(aid, 0):
                dsum, dcnt, version = await self.learning.totals(aid, len(lr.tasks),
                                                                 len(lr.models))
                lr.set_online(dsum, dcnt, version)
                self._applied[aid] = version

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(LEARN_POLL_S)
            with contextlib.suppress(StateUnavailable):  # logged once per outage by the backend
                await self._refresh()

    async def _replay(self) -> None:
        """Memory backend: learn the stored feedback newer than each artifact again."""
        rows = await self.store.rows()
        for aid, lr in self._learners():
            since = _created(lr.manifest)
            todo = [r for r in rows if r["created_at"] > since and r["model"] in lr.models]
            if not todo:
                continue
            steps = await asyncio.to_thread(_evidence, lr, todo)
            for (j, p), score in steps:
                await self.learning.add(aid, j, p * score, p)
            dsum, dcnt, version = await self.learning.totals(aid, len(lr.tasks), len(lr.models))
            lr.set_online(dsum, dcnt, version)
            self._applied[aid] = version
            log.info("feedback_relearned", artifact=aid, records=len(todo))

    def record(self, decision: Decision, text: str, cost_usd: float | None = None,
               owner: str = "") -> None:
        """Remember `owner`'s decision (cheap, synchronous); log its A/B variant in the
        background. An id already recorded for that owner keeps its first decision."""
        cost = decision.estimated_cost_usd if cost_usd is None else cost_usd
        self.recent.put(owner, decision.request_id,
                        Recent(text, decision.model, cost, decision.variant))
        if decision.variant and self.ab is not None:
            self.ab.decided(self.experiment, decision.variant, cost)
        elif decision.variant:
            task = asyncio.ensure_future(self._log(decision.request_id, decision.variant,
                                                   decision.model, cost))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _log(self, request_id: str, variant: str, model: str, cost: float) -> None:
        try:
            await self.decisions.record(request_id, variant, model, cost)
        except Exception:  # a lost log row must not fail anything else; say so loudly
            log.exception("ab decision log write failed", request_id=request_id)

    async def feedback(self, *, request_id: str, prompt: str, model: str, score: float,
                       comment: str = "", source: str = "", owner: str = "") -> FeedbackResult:
        """Store one outcome and let the serving learned routers learn from it; a
        request id is looked up among `owner`'s decisions only."""
        if request_id:
            check_request_id(request_id, "feedback.request_id")
        recent = await self.recent.get(owner, request_id) if request_id else None
        if request_id and recent is None and not prompt:
            raise NotFound(f"feedback.request_id: {echo(request_id)} is not a recent decision of "
                           "this server; send the prompt with the feedback")
        if not request_id and not prompt:
            raise InvalidRequest("feedback: give a request_id or a prompt")
        text = prompt or (recent.text if recent else "")
        model = model or (recent.model if recent else "")
        if not model:
            raise InvalidRequest("feedback.model: must name the model that answered")
        self.router.registry.check_known(frozenset({model}), "feedback.model")
        fid = await self.store.add(request_id=request_id, prompt=text, model=model, score=score,
                                   comment=comment, source=source,
                                   cost_usd=recent.cost_usd if recent else None)
        if recent is not None and recent.variant and self.ab is not None:
            self.ab.scored(self.experiment, recent.variant, float(score))
        return FeedbackResult(fid, await self._learn(text, model, float(score)))

    async def _learn(self, text: str, model: str, score: float) -> bool:
        """Add the outcome to the shared totals and apply them (all replicas do the same)."""
        learned = False
        for lr in (self.router.learned, self.router.candidate):
            if lr is None or model not in lr.models:
                continue
            learned = True
            if not isinstance(lr, LearnedRouter):
                lr.learn(text, model, score)
                continue
            aid = artifact_id(lr)
            j, p = lr.evidence(text, model, score)
            try:
                await self.learning.add(aid, j, p * score, p)
                dsum, dcnt, version = await self.learning.totals(aid, len(lr.tasks),
                                                                 len(lr.models))
            except StateUnavailable:  # logged by the backend: learn here, for now at least
                lr.learn(text, model, score)
                continue
            lr.set_online(dsum, dcnt, version)
            self._applied[aid] = version
        return learned

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.recent.aclose()
        if self.ab is not None:
            await self.ab.aclose()
        await self.decisions.close()
        await self.store.close()


def _created(manifest: dict[str, Any]) -> float:
    """When the artifact was trained (epoch seconds; 0 when unknown)."""
    try:
        return float(calendar.timegm(time.strptime(str(manifest["created"]), "%Y-%m-%dT%H:%M:%SZ")))
    except (KeyError, ValueError):
        return 0.0


def _evidence(lr: LearnedRouter, rows: list[dict[str, Any]]) -> list[tuple[tuple[int, Any], float]]:
    """Each stored feedback row's (evidence, score), computed off the event loop."""
    return [(lr.evidence(r["prompt"], r["model"], r["score"]), r["score"]) for r in rows]
