"""Ensemble: N models answer in parallel; the best answer is returned.

Members are the decision's model, its fallbacks, then the other eligible
candidates by score, N distinct in all. Each member calls only its own
deployments (no cross-model fallback, so no model answers twice). Selection
(`ensemble.selection`): "agreement" (the answer most similar, by word-set
Jaccard, to the others) or "judge" (the highest 0-10 grade from
`ensemble.judge_model`); answers failing the cascade's cheap checks (empty,
refusal, invalid JSON...) score 0. Ties go to the earlier member. Usage and
cost cover every member and judge call. Members are reported as CascadeSteps
(confidence = selection score; reason says chosen / not chosen / failed).

Config (`ensemble` section): enabled (false), size (3), selection
("agreement"), judge_model ("" - required for selection "judge").
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from routecore.calling.cascade import cheap_checks, judge, judge_for
from routecore.calling.deadline import Deadline
from routecore.calling.types import Attempt, CascadeStep, CompletionRequest, ModelAnswer, ModelCaller, Usage
from routecore.config import Config, _Reader
from routecore.domain import Decision
from routecore.errors import AllProvidersFailed, ResourceExhausted, RoutecoreError

T = TypeVar("T")
SELECTIONS = ("agreement", "judge")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class EnsembleConfig:
    enabled: bool = False
    size: int = 3
    selection: str = "agreement"
    judge_model: str = ""


def parse_ensemble(raw: Any, config: Config, problems: list[str]) -> EnsembleConfig:
    """Validate the `ensemble` section; problems are appended with their exact paths."""
    r, p, d = _Reader(), "ensemble", EnsembleConfig()
    n = r.mapping(raw, p, required=False)
    r.unknown(n, p, {"enabled", "size", "selection", "judge_model"})
    selection = r.get(n, "selection", p, str, d.selection) or d.selection
    if selection not in SELECTIONS:
        r.fail(f"{p}.selection", f"must be one of {', '.join(SELECTIONS)}")
    judge_model = r.get(n, "judge_model", p, str, "") or ""
    if judge_model and judge_model not in config.models:
        r.fail(f"{p}.judge_model", f"unknown model {judge_model!r}")
    if selection == "judge" and not judge_model:
        r.fail(f"{p}.judge_model", "is required when selection is judge")
    size = r.number(n, "size", p, lo=2, hi=8, integer=True, default=d.size)
    problems.extend(r.problems)
    return EnsembleConfig(enabled=bool(r.get(n, "enabled", p, bool, False)),
                          size=size or d.size, selection=selection, judge_model=judge_model)


def members(completer: ModelCaller, decision: Decision, size: int) -> list[str]:
    eligible = sorted((c for c in decision.candidates if not c.rejected_reason),
                      key=lambda c: -c.score)
    names = [*completer.chain(decision), *(c.model for c in eligible)]
    return [m for m in dict.fromkeys(names) if m in completer.config.models][:size]


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the two answers' lower-cased word sets."""
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not wa and not wb:
        return 1.0
    return len(wa & wb) / len(wa | wb)


def agreement_scores(texts: list[str]) -> list[float]:
    """Each answer's mean similarity to the others (1.0 for a lone answer)."""
    if len(texts) == 1:
        return [1.0]
    return [sum(similarity(t, u) for j, u in enumerate(texts) if j != i) / (len(texts) - 1)
            for i, t in enumerate(texts)]


async def all_or_none(coros: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run `coros` concurrently; if one raises, cancel and await the others, then raise.

    No member or judge call is left running (or billed upstream) after the
    request has failed, and no task's exception goes unretrieved.
    """
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def run_ensemble(completer: ModelCaller, cfg: EnsembleConfig, req: CompletionRequest,
                       decision: Decision,
                       size: int, deadline: Deadline, attempts: list[Attempt],
                       ) -> tuple[ModelAnswer, tuple[CascadeStep, ...], Usage, float]:
    """Ask `size` models at once and return (best answer, member steps, usage, cost)."""
    names = members(completer, decision, size)
    logs: list[list[Attempt]] = [[] for _ in names]

    async def member(name: str, log: list[Attempt]) -> ModelAnswer | RoutecoreError:
        try:
            return await completer.call_models([name], req, decision, deadline, log)
        except (AllProvidersFailed, ResourceExhausted) as exc:
            return exc

    try:
        results = await all_or_none([member(m, logs[i]) for i, m in enumerate(names)])
    finally:
        for log in logs:
            attempts.extend(log)
    answers: list[ModelAnswer] = []
    failed: dict[str, str] = {}
    for name, res in zip(names, results, strict=True):
        if isinstance(res, RoutecoreError):
            failed[name] = res.message
        else:
            answers.append(res)
    if not answers:
        raise completer.all_failed(attempts)
    billed = list(answers)
    ok = [cheap_checks(a.text, a.finish_reason, req.json_mode) is None for a in answers]
    judge_model = judge_for(req, cfg.judge_model)
    if cfg.selection == "judge" and judge_model:
        jlogs: list[list[Attempt]] = [[] for _ in answers]
        try:
            graded = await all_or_none([
                judge(completer, judge_model, req, decision, a.text, deadline, jlogs[i])
                for i, a in enumerate(answers)])
        finally:
            for log in jlogs:
                attempts.extend(log)
        scores = [g if g is not None else 0.0 for g, _ in graded]
        billed.extend(j for _, j in graded if j is not None)
        how = "judge"
    else:
        scores = agreement_scores([a.text for a in answers])
        how = "agreement"
        if cfg.selection == "judge":  # the judge is outside this caller's allow_models
            how = f"agreement, judge {cfg.judge_model} outside allow_models"
    scores = [s if good else 0.0 for s, good in zip(scores, ok, strict=True)]
    best = max(range(len(answers)), key=lambda i: (scores[i], -i))
    steps = [CascadeStep(a.model, scores[i], False,
                         f"ensemble: {'chosen' if i == best else 'not chosen'} "
                         f"({how} {scores[i]:.2f})", a.cost_usd)
             for i, a in enumerate(answers)]
    steps += [CascadeStep(m, 0.0, False, f"ensemble: failed: {msg}"[:200])
              for m, msg in failed.items()]
    usage = Usage(sum(a.usage.input_tokens for a in billed),
                  sum(a.usage.output_tokens for a in billed))
    return answers[best], tuple(steps), usage, sum(a.cost_usd for a in billed)
