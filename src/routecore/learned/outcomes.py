"""Outcomes: what was decided, and how well it went.

One owner for three things that follow a decision:
- recent decisions, kept in memory (bounded) so feedback can name a request id
  instead of repeating the prompt. A decision belongs to its owner (the caller's
  tenant when auth is on): another owner's lookup is NOT_FOUND, exactly as for an
  id that never existed, and a caller-chosen id never replaces a recorded one;
- the A/B decision log, written to SQLite by a background task, never on the
  response path (the tasks are tracked and awaited on shutdown);
- feedback: validated, stored durably (SQLite, `feedback.path`), and learned
  online by the serving learned routers, so later decisions change at once.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import structlog

from routecore.domain import Decision, check_request_id
from routecore.errors import InvalidRequest, NotFound, echo
from routecore.learned.ab import DecisionLog
from routecore.learned.feedback import FeedbackStore, default_path, feedback_path
from routecore.routing.router import Router

log = structlog.get_logger("routecore.learned.outcomes")

RECENT = 100_000
# Recent decisions keep their prompt text; bound the total too, or 100k long
# prompts (up to 4M chars each) could hold gigabytes.
RECENT_CHARS = 64_000_000


@dataclass(frozen=True, slots=True)
class Recent:
    text: str
    model: str
    cost_usd: float
    variant: str


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    feedback_id: str
    learned: bool


class Outcomes:
    """Per-process outcome recording; `aclose()` on shutdown."""

    def __init__(self, router: Router, db_path: str | Path | None = None,
                 capacity: int = RECENT, max_chars: int = RECENT_CHARS) -> None:
        self.router = router
        path = db_path or feedback_path(router.config.extra) or default_path()
        self.store = FeedbackStore(path)
        self.decisions = DecisionLog(path)
        self._recent: OrderedDict[tuple[str, str], Recent] = OrderedDict()
        self._capacity = capacity
        self._max_chars = max_chars
        self._chars = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, decision: Decision, text: str, cost_usd: float | None = None,
               owner: str = "") -> None:
        """Remember `owner`'s decision (cheap, synchronous); log its A/B variant in the
        background. An id already recorded for that owner keeps its first decision."""
        cost = decision.estimated_cost_usd if cost_usd is None else cost_usd
        key = (owner, decision.request_id)
        if key in self._recent:
            return
        self._recent[key] = Recent(text, decision.model, cost, decision.variant)
        self._chars += len(text)
        while len(self._recent) > self._capacity or (
                self._chars > self._max_chars and len(self._recent) > 1):
            self._chars -= len(self._recent.popitem(last=False)[1].text)
        if decision.variant:
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
        recent = self._recent.get((owner, request_id)) if request_id else None
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
        learned = False
        for lr in (self.router.learned, self.router.candidate):
            if lr is not None and model in lr.models:
                lr.learn(text, model, float(score))
                learned = True
        return FeedbackResult(fid, learned)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.decisions.close()
        await self.store.close()
