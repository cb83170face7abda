"""Cascade: answer with the cheapest acceptable model, escalate while confidence is low.

The ladder is the decision's eligible candidates in cost order, each rung of
higher predicted quality than the last, and the decision's own model (at most
`cascade.max_steps` rungs, the last one always kept). Each answer gets a confidence in [0, 1]:

- cheap checks first: empty answer (0), refusal (0.05), hedging (0.3),
  truncated at the token limit (0.2), invalid JSON when json_mode (0);
- otherwise the mean of the signals available: exp(mean token logprob) when the
  upstream returned logprobs, and a 0-10 grade from `cascade.judge_model` when
  one is configured; with neither, the model's registry quality for the category.

Below the threshold (request `cascade_threshold`, else `cascade.threshold`) the
next rung answers. The last rung's answer is kept whatever its confidence; if
it fails, the most confident earlier answer is returned. Usage and cost cover
every call, judges included.

Config (`cascade` section): enabled (false), threshold (0.7), judge_model ("":
none), max_steps (3), use_logprobs (true).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from routecore.calling.deadline import Deadline
from routecore.calling.types import Attempt, CascadeStep, CompletionRequest, ModelAnswer, ModelCaller, Usage
from routecore.config import Config, _Reader
from routecore.domain import Decision, Message
from routecore.errors import AllProvidersFailed, ResourceExhausted

JUDGE_SYSTEM = ("You are a strict grader. Rate how well the ANSWER answers the QUESTION on a "
                "scale from 0 (useless or wrong) to 10 (correct and complete). "
                "Reply with the number only.")
_REFUSAL = re.compile(r"\b(I'?m sorry|I cannot|I can'?t (help|assist)|I am unable|"
                      r"I'?m unable|as an AI)\b", re.I)
_HEDGE = re.compile(r"\b(I'?m not sure|I am not sure|I don'?t know|it might be|not certain)\b",
                    re.I)


@dataclass(frozen=True, slots=True)
class CascadeConfig:
    enabled: bool = False
    threshold: float = 0.7
    judge_model: str = ""
    max_steps: int = 3
    use_logprobs: bool = True


def parse_cascade(raw: Any, config: Config, problems: list[str]) -> CascadeConfig:
    """Validate the `cascade` section; problems are appended with their exact paths."""
    r, p, d = _Reader(), "cascade", CascadeConfig()
    n = r.mapping(raw, p, required=False)
    r.unknown(n, p, {"enabled", "threshold", "judge_model", "max_steps", "use_logprobs"})
    judge = r.get(n, "judge_model", p, str, "") or ""
    if judge and judge not in config.models:
        r.fail(f"{p}.judge_model", f"unknown model {judge!r}")
    threshold = r.number(n, "threshold", p, lo=0.0, hi=1.0, default=d.threshold)
    steps = r.number(n, "max_steps", p, lo=1, hi=10, integer=True, default=d.max_steps)
    problems.extend(r.problems)
    return CascadeConfig(
        enabled=bool(r.get(n, "enabled", p, bool, False)),
        threshold=d.threshold if threshold is None else threshold,
        judge_model=judge, max_steps=steps or d.max_steps,
        use_logprobs=bool(r.get(n, "use_logprobs", p, bool, True)))


def cheap_checks(text: str, finish_reason: str, json_mode: bool) -> tuple[float, str] | None:
    """A confidence and reason when a cheap check already fails the answer, else None."""
    stripped = text.strip()
    if not stripped:
        return 0.0, "empty answer"
    if json_mode:
        try:
            json.loads(stripped)
        except ValueError:
            return 0.0, "invalid JSON"
    if _REFUSAL.search(stripped[:300]):
        return 0.05, "refusal"
    if finish_reason == "length":
        return 0.2, "truncated at the token limit"
    if _HEDGE.search(stripped[:300]):
        return 0.3, "hedging"
    return None


def logprob_confidence(logprobs: Sequence[float] | None) -> float | None:
    """exp(mean token logprob): the geometric-mean token probability."""
    if not logprobs:
        return None
    return math.exp(sum(logprobs) / len(logprobs))


def judge_messages(question: str, answer: str) -> tuple[Message, ...]:
    return (Message("system", JUDGE_SYSTEM),
            Message("user", f"QUESTION:\n{question}\n\nANSWER:\n{answer}"))


def parse_grade(text: str) -> float | None:
    """A 0-10 grade from the judge's reply as a confidence in [0, 1]."""
    m = re.search(r"-?\d+(?:\.\d+)?", text)
    if not m:
        return None
    return min(10.0, max(0.0, float(m.group()))) / 10.0


def judge_for(req: CompletionRequest, judge_model: str) -> str:
    """`judge_model` if this caller may be billed for it, else "".

    The judge is the operator's choice, but its call is billed to the caller: a
    caller limited to some models (its key's allow list, or its own
    constraints.allow_models) is never charged for a judge outside them; the
    cascade and ensemble then decide without a judge and say so.
    """
    allow = req.route.constraints.allow_models
    return judge_model if judge_model and (not allow or judge_model in allow) else ""


async def judge(completer: ModelCaller, judge_model: str, req: CompletionRequest,
                decision: Decision, answer: str, deadline: Deadline,
                attempts: list[Attempt]) -> tuple[float | None, ModelAnswer | None]:
    """Grade `answer` with the judge model; (None, None) when the judge could not answer."""

    question = req.route.text()
    jreq = CompletionRequest(req.route, max_output_tokens=8, temperature=0.0)
    try:
        ans = await completer.call_models([judge_model], jreq, decision, deadline, attempts,
                                          messages=judge_messages(question, answer))
    except (AllProvidersFailed, ResourceExhausted):
        return None, None
    return parse_grade(ans.text), ans


async def confidence(completer: ModelCaller, cfg: CascadeConfig, ans: ModelAnswer,
                     req: CompletionRequest,
                     decision: Decision, deadline: Deadline, attempts: list[Attempt], *,
                     use_judge: bool) -> tuple[float, str, list[ModelAnswer]]:
    """(confidence, reason, judge answers to bill) for one answer."""
    failed = cheap_checks(ans.text, ans.finish_reason, req.json_mode)
    if failed is not None:
        return failed[0], failed[1], []
    signals: list[tuple[str, float]] = []
    extra: list[ModelAnswer] = []
    lp = logprob_confidence(ans.logprobs) if cfg.use_logprobs else None
    if lp is not None:
        signals.append(("logprobs", lp))
    judge_model = judge_for(req, cfg.judge_model)
    if use_judge and judge_model:
        grade, jans = await judge(completer, judge_model, req, decision, ans.text, deadline,
                                  attempts)
        if jans is not None:
            extra.append(jans)
        if grade is not None:
            signals.append(("judge", grade))
    if not signals:
        spec = completer.config.models[ans.model]
        signals.append(("registry quality", spec.quality_for(decision.category)))
    conf = sum(v for _, v in signals) / len(signals)
    reason = ", ".join(f"{k} {v:.2f}" for k, v in signals)
    if use_judge and cfg.judge_model and not judge_model:
        reason += f" (judge {cfg.judge_model} not asked: outside allow_models)"
    return conf, reason, extra


def ladder(completer: ModelCaller, decision: Decision, max_steps: int) -> list[str]:
    """Cheapest acceptable first, then strictly better predicted quality (plus the decision's
    model), at most max_steps with the last rung kept."""
    models = completer.config.models
    rows: list[tuple[float, float, str]] = []
    eligible = [c for c in decision.candidates if not c.rejected_reason and c.model in models]
    if eligible:
        rows = [(c.estimated_cost_usd, c.predicted_quality, c.model) for c in eligible]
    else:
        for m in completer.chain(decision):
            if m in models:
                spec = models[m]
                rows.append((spec.price.input + spec.price.output,
                             spec.quality_for(decision.category), m))
    rows.sort(key=lambda r: (r[0], -r[1]))
    out: list[str] = []
    best = -1.0
    for _, quality, model in rows:
        if quality > best or model == decision.model:  # the router's pick is always a rung
            out.append(model)
            best = max(best, quality)
    if len(out) > max_steps:
        out = [*out[: max_steps - 1], out[-1]]
    return out


async def run_cascade(completer: ModelCaller, cfg: CascadeConfig, req: CompletionRequest, decision: Decision,
                      deadline: Deadline, attempts: list[Attempt],
                      ) -> tuple[ModelAnswer, tuple[CascadeStep, ...], Usage, float]:
    """Answer along the ladder; returns (answer, steps, total usage, total cost)."""
    threshold = req.cascade_threshold or cfg.threshold
    rungs = ladder(completer, decision, cfg.max_steps)
    steps: list[CascadeStep] = []
    billed: list[ModelAnswer] = []
    best: tuple[float, ModelAnswer] | None = None
    chosen: ModelAnswer | None = None
    for i, model in enumerate(rungs):
        last = i == len(rungs) - 1
        try:
            ans = await completer.call_models([model], req, decision, deadline, attempts,
                                              logprobs=cfg.use_logprobs)
        except (AllProvidersFailed, ResourceExhausted) as exc:
            steps.append(CascadeStep(model, 0.0, not last, f"failed: {exc.message}"[:200]))
            continue
        billed.append(ans)
        conf, reason, extra = await confidence(completer, cfg, ans, req, decision, deadline,
                                               attempts, use_judge=not last)
        billed.extend(extra)
        step_cost = ans.cost_usd + sum(e.cost_usd for e in extra)
        if conf >= threshold or last:
            why = f"{reason} >= {threshold:.2f}" if conf >= threshold else \
                f"{reason}; last rung"
            steps.append(CascadeStep(model, conf, False, why, step_cost))
            chosen = ans
            break
        steps.append(CascadeStep(model, conf, True, f"{reason} < {threshold:.2f}", step_cost))
        if best is None or conf > best[0]:
            best = (conf, ans)
    if chosen is None:
        if best is None:
            raise completer.all_failed(attempts)
        chosen = best[1]
    usage = Usage(sum(a.usage.input_tokens for a in billed),
                  sum(a.usage.output_tokens for a in billed))
    return chosen, tuple(steps), usage, sum(a.cost_usd for a in billed)
