"""The simulated provider: deterministic answers and scripted failures, no network.

`SimEngine` decides, per call, what an upstream would do; `SimulatedProvider`
plays it in-process (endpoint kind "simulated") and `sim_server` serves it as
an OpenAI-compatible (and Anthropic-compatible) HTTP upstream.

`SimBatches` plays OpenAI's Files + Batches API (in-process through
`SimulatedProvider.batch_api`, over HTTP through sim_server); a batch finishes
`batch_delay_s` (endpoint option, default 0) after it is created.

Behaviour per model comes from `ModelSpec.sim` (validated by `validate_sim`):

    sim:
      latency_ms: {p50: 0, p95: 0}  # lognormal time to the answer (default 0)
      tokens_per_s: 0               # stream pacing after the first chunk (0: no pause)
      status_429_rate: 0.0          # answer 429 with Retry-After: retry_after_s
      retry_after_s: 1.0
      status_5xx_rate: 0.0          # answer 500
      timeout_rate: 0.0             # hang for timeout_s
      timeout_s: 30.0
      cut_stream_rate: 0.0          # drop a stream after 3 chunks
      error_rate: 0.0               # drop the connection without an answer
      seed: 0                       # of the failure draws

or by a magic word in the model name or model_id (for tests): `slow` (1 s) or
`slow_N` (N ms), `flaky_N` (the first N calls fail with 500, then succeed),
`error_429`, `error_500`, `timeout`, `cut_stream`, `context_overflow`, `refuse`,
`empty`, `bad_json`.

Answers are seeded by prompt and model, written as plain sentences about the
prompt's words. A good answer is the same for every model (built from the prompt
alone, so ensembles can agree);
the chance of a good answer is the model's registry quality for the prompt's
category, lowered by the category's complexity. Bad answers hedge, refuse, are
truncated or wrong, with low logprobs. A judge prompt (see `routecore.calling.cascade`)
gets a 0-10 grade: high when the graded answer is the good one. A classification
prompt (see `routecore.calling.llm_classifier`) gets a JSON classification,
deterministic from the text (`bad_json` in the model name: the JSON cut in half).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from routecore.calling.providers.base import Provider, ProviderCall, ProviderResponse, StreamChunk
from routecore.calling.providers.batch_api import (
    TERMINAL,
    BatchAPI,
    LineResult,
    ProviderBatch,
    input_line,
    parse_output,
)
from routecore.calling.providers.openai import parse_completion
from routecore.calling.types import Usage
from routecore.config import Config, Endpoint, ModelSpec, _Reader
from routecore.domain import Message
from routecore.errors import ProviderError

SIM_KEYS = {"latency_ms", "tokens_per_s", "status_429_rate", "retry_after_s", "status_5xx_rate",
            "timeout_rate", "timeout_s", "cut_stream_rate", "error_rate", "seed"}
_RATES = ("status_429_rate", "status_5xx_rate", "timeout_rate", "cut_stream_rate", "error_rate")
_FAULTS = (("status_429_rate", "rate_limit"), ("status_5xx_rate", "server"),
           ("timeout_rate", "timeout"), ("error_rate", "drop"), ("cut_stream_rate", "cut"))
JUDGE_MARKER = "strict grader"
CLASSIFIER_MARKER = "request classifier"  # calling/llm_classifier.py's system prompt
REFUSAL = "I'm sorry, but I can't help with that request."
# Answers are sentences about the prompt's own words, not word salad: templates over
# the prompt's content words (and generic phrases when it has few).
_STOP = frozenset("""a an the and or of to in on for with about from into by is are was were be been
being it its this that these those what which who whom how why when where do does did can could
should would will shall may might must you your we our they their me my he she him her his
as at if then than so not no yes please write explain give make tell show list describe find
compute calculate solve create use using prove let lets get got also just some any all each
every more most much many very into over under between here there now one two three merge merges
sort sorts implement summarize translate fix debug rewrite convert generate build design analyze
compare evaluate return returns take takes rose""".split())
_FILLERS = ("the inputs", "the constraints", "the edge cases", "the main assumption",
            "the expected output", "the first step", "the overall structure", "the trade-offs")
_TEMPLATES = (
    "The short version: it all hinges on {a}, and on how it relates to {b}.",
    "Start with {a}; once that is settled, handling {b} is straightforward.",
    "It helps to compare {a} with {b} before deciding anything.",
    "Most of the work is in {a}, so check it against {b}.",
    "A good answer treats {a} and {b} together rather than one at a time.",
    "Look at {a} first, then confirm that the result still fits {b}.",
    "In practice the answer depends on {a} as much as on {b}, so keep both in view.",
    "The key step is to pin down {a} before touching {b}.",
)


def _topics(prompt: str) -> list[str]:
    """Noun-ish phrases of the prompt: runs of content words, at most two words each,
    skipping lone adverbs and participles ("infinitely", "sorted")."""
    out: list[str] = []
    run: list[str] = []
    for i, w in enumerate([*re.findall(r"[A-Za-z][A-Za-z'-]*", prompt[:2000]), ""]):
        low = w.lower()
        if len(low) > 2 and low not in _STOP:
            run.append(low if i == 0 else w)  # names keep their capital
            continue
        if len(run) >= 2 or (run and not run[0].endswith(("ly", "ed", "ing"))):
            phrase = "the " + " ".join(run[-2:])
            if phrase.lower() not in (o.lower() for o in out):
                out.append(phrase)
        run = []
    return out[:8]


def readable(prompt: str, seed: str) -> str:
    """Two or three deterministic sentences about the prompt's words (seeded by `seed`)."""
    rng = random.Random(hashlib.sha256(seed.encode("utf-8", "surrogatepass")).digest())
    topics = _topics(prompt)
    out = []
    for template in rng.sample(_TEMPLATES, rng.randint(2, 3)):
        if len(topics) >= 2:
            a, b = rng.sample(topics, 2)
        elif topics:  # one topic: talk about it, against a generic aspect
            a, b = topics[0], rng.choice(_FILLERS)
        else:
            a, b = rng.sample(_FILLERS, 2)
        out.append(template.format(a=a, b=b))
    return " ".join(out)


def validate_sim(models: Mapping[str, ModelSpec]) -> list[str]:
    """Problems in every model's `sim` section, each naming its exact path."""
    r = _Reader()
    for name, spec in models.items():
        p = f"models.{name}.sim"
        sim = dict(spec.sim)
        r.unknown(sim, p, SIM_KEYS)
        rates = [r.number(sim, key, p, lo=0.0, hi=1.0, default=0.0) for key in _RATES]
        if sum(v or 0.0 for v in rates) > 1.0:
            r.fail(p, "the failure rates must sum to <= 1")
        for key, default in (("retry_after_s", 1.0), ("timeout_s", 30.0), ("tokens_per_s", 0.0)):
            r.number(sim, key, p, lo=0.0, default=default)
        r.number(sim, "seed", p, integer=True, default=0)
        lp = f"{p}.latency_ms"
        lat = r.mapping(sim.get("latency_ms"), lp, required=False)
        r.unknown(lat, lp, {"p50", "p95"})
        p50 = r.number(lat, "p50", lp, lo=0.0, default=0.0)
        p95 = r.number(lat, "p95", lp, lo=0.0, default=p50)  # unset: the same as p50
        if p50 is not None and p95 is not None and p95 < p50:
            r.fail(f"{lp}.p95", "must be >= latency_ms.p50")
    return r.problems


@dataclass(slots=True)
class SimAnswer:
    text: str
    pieces: list[str]
    finish_reason: str
    logprobs: list[float]
    input_tokens: int

    @property
    def usage(self) -> Usage:
        return Usage(self.input_tokens, len(self.pieces))


@dataclass(slots=True)
class SimPlan:
    """What the upstream does for one call."""

    fault: str  # "" | rate_limit | server | timeout | drop | context_overflow
    latency_s: float
    answer: SimAnswer
    retry_after_s: float = 1.0
    timeout_s: float = 30.0
    cut_after: int = -1  # >= 0: the stream is dropped after this many pieces
    piece_delay_s: float = 0.0


@dataclass(slots=True)
class _ModelState:
    calls: int = 0
    rng: random.Random = field(default_factory=random.Random)


def approx_tokens(text: str) -> int:
    """The simulated upstream's own tokenizer: about four characters a token."""
    return max(1, (len(text) + 3) // 4) if text else 0


class SimEngine:
    """Decides each simulated call; deterministic for a given config, seed and call order.

    Per-model state (call count, failure draws) is kept for at most
    `MAX_MODELS` model names, the oldest dropped first: an HTTP client sending
    ever new model names cannot grow the server without bound.
    """

    MAX_MODELS = 4096

    def __init__(self, config: Config | None = None, seed: int = 0) -> None:
        self._config = config
        self._seed = seed
        self._specs: dict[str, ModelSpec] = {}
        if config is not None:
            for spec in config.models.values():
                self._specs[spec.name] = spec
                self._specs.setdefault(spec.model_id, spec)
                for dep in spec.deployments:
                    self._specs.setdefault(dep.model_id, spec)
                for v in spec.versions.values():  # a sim server answers every version's id
                    self._specs.setdefault(v.model_id, spec)
        self._state: dict[str, _ModelState] = {}

    def spec(self, model: str) -> ModelSpec | None:
        return self._specs.get(model)

    def _category(self, text: str) -> tuple[str, float]:
        low = text.lower()
        if self._config is not None:
            for name, cat in self._config.categories.items():
                if any(k in low for k in cat.keywords):
                    return name, cat.complexity
        return "default", 0.3

    def plan(self, call: ProviderCall) -> SimPlan:
        key = call.model_id or call.model
        magic = f"{call.model} {call.model_id}".lower()
        spec = self.spec(call.model_id) or self.spec(call.model)
        sim: Mapping[str, Any] = spec.sim if spec else {}
        state = self._state.get(key)
        if state is None:
            if len(self._state) >= self.MAX_MODELS:
                del self._state[next(iter(self._state))]
            state = _ModelState(rng=random.Random(f"{self._seed}:{sim.get('seed', 0)}:{key}"))
            self._state[key] = state
        state.calls += 1
        answer = self.answer(call, spec, magic)
        plan = SimPlan(fault="", latency_s=self._latency(sim, magic, state.rng), answer=answer,
                       retry_after_s=float(sim.get("retry_after_s", 1.0)),
                       timeout_s=float(sim.get("timeout_s", 30.0)))
        tps = float(sim.get("tokens_per_s", 0) or 0)
        plan.piece_delay_s = 1.0 / tps if tps > 0 else 0.0
        flaky = re.search(r"flaky_(\d+)", magic)
        overflow = spec is not None and answer.input_tokens > spec.context_window
        if overflow or "context_overflow" in magic:
            plan.fault = "context_overflow"
        elif "error_429" in magic:
            plan.fault = "rate_limit"
        elif "error_500" in magic or (flaky and state.calls <= int(flaky.group(1))):
            plan.fault = "server"
        elif "timeout" in magic:
            plan.fault = "timeout"
        else:
            u = state.rng.random()
            for rate_key, fault in _FAULTS:
                rate = float(sim.get(rate_key, 0.0))
                if u < rate:
                    plan.fault = fault
                    break
                u -= rate
        if "cut_stream" in magic or plan.fault == "cut":
            plan.fault = ""
            plan.cut_after = min(3, max(0, len(answer.pieces) - 1))
        return plan

    @staticmethod
    def _latency(sim: Mapping[str, Any], magic: str, rng: random.Random) -> float:
        slow = re.search(r"slow(?:_(\d+))?", magic)
        if slow:
            return int(slow.group(1)) / 1000.0 if slow.group(1) else 1.0
        lat = sim.get("latency_ms") or {}
        p50 = float(lat.get("p50", 0.0))
        p95 = float(lat.get("p95", p50))
        if p50 <= 0:
            return 0.0
        sigma = math.log(max(p95, p50) / p50) / 1.645 if p95 > p50 else 0.0
        return rng.lognormvariate(math.log(p50), sigma) / 1000.0

    def answer(self, call: ProviderCall, spec: ModelSpec | None, magic: str = "") -> SimAnswer:
        """The deterministic answer of `call.model_id` to the call's messages."""
        text_in = "\n".join(m.content for m in call.messages)
        n_in = approx_tokens(text_in) + 4 * len(call.messages)
        system = " ".join(m.content for m in call.messages if m.role == "system")
        if JUDGE_MARKER in system:
            return self._pieces(self._grade(call.messages), n_in, [-0.05], call.max_output_tokens)
        prompt = next((m.content for m in reversed(call.messages) if m.role == "user"), text_in)
        if "refuse" in magic:
            return self._pieces(REFUSAL, n_in, None, call.max_output_tokens)
        if "empty" in magic:
            return SimAnswer("", [], "stop", [], n_in)
        if CLASSIFIER_MARKER in system:
            return self._pieces(self._classify(prompt, system, "bad_json" in magic), n_in,
                                [-0.05], call.max_output_tokens)
        category, hardness = self._category(prompt)
        skill = spec.quality_for(category) if spec else 0.75
        p_good = skill ** (0.5 + 2.5 * hardness)
        rng = random.Random(hashlib.sha256(f"{call.model_id}\x00{prompt}".encode()).digest())
        canonical = canonical_answer(prompt)
        if rng.random() < p_good:
            text = json.dumps({"answer": canonical}) if call.json_mode else canonical
            lps = [-abs(rng.gauss(0.05, 0.05)) for _ in range(64)]
            return self._pieces(text, n_in, lps, call.max_output_tokens)
        mode = rng.choices(("hedge", "refusal", "truncated", "wrong"), (4, 2, 2, 2))[0]
        lps = [-abs(rng.gauss(1.2, 0.5)) for _ in range(64)]
        wrong = readable(prompt, f"{call.model_id}\x00{prompt}\x00wrong")
        if mode == "refusal":
            text = REFUSAL
        elif mode == "hedge":
            text = f"I'm not sure, but it might be this: {wrong}"
        elif mode == "truncated":
            words = canonical.split(" ")
            ans = self._pieces(" ".join(words[: max(2, len(words) // 3)]), n_in, lps,
                               call.max_output_tokens)
            ans.finish_reason = "length"
            return ans
        else:
            text = wrong
        if call.json_mode:
            text = '{"answer": "' + text.replace('"', "")  # unterminated JSON
        return self._pieces(text, n_in, lps, call.max_output_tokens)

    @staticmethod
    def _pieces(text: str, n_in: int, lps: Sequence[float] | None, max_out: int) -> SimAnswer:
        words = text.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []
        finish = "stop"
        if max_out > 0 and len(pieces) > max_out:
            pieces, finish = pieces[:max_out], "length"
        lp = [lps[i % len(lps)] for i in range(len(pieces))] if lps else []
        return SimAnswer("".join(pieces), pieces, finish, lp, n_in)

    def _classify(self, prompt: str, system: str, broken: bool) -> str:
        """A classification call's JSON answer: the category whose keywords the text hits
        most (a hash of the text picks when none does), a difficulty from its complexity.
        Like a gullible model, it obeys "reply with ..." inside the text."""
        text = prompt.removeprefix("TEXT:\n")
        hijack = re.search(r"reply with:?\s*(.+)", text, re.I)
        if hijack:
            return hijack.group(1).strip()
        listed = re.search(r"<one of: ([^>]*)>", system)
        names = listed.group(1).split(", ") if listed else ["default"]
        cats = self._config.categories if self._config is not None else {}
        low = text.lower()
        hits = [sum(k in low for k in cats[n].keywords) if n in cats else 0 for n in names]
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        best = hits.index(max(hits)) if max(hits) > 0 else digest[0] % len(names)
        base = cats[names[best]].complexity if names[best] in cats else 0.3
        difficulty = min(5, max(1, round(1 + 4 * base) + digest[1] % 3 - 1))
        answer = json.dumps({"category": names[best], "difficulty": difficulty})
        return answer[: len(answer) // 2] if broken else answer

    @staticmethod
    def _grade(messages: Sequence[Message]) -> str:
        body = "\n".join(m.content for m in messages if m.role != "system")
        q = re.search(r"QUESTION:\n(.*?)\n\nANSWER:\n(.*)\Z", body, re.S)
        if not q:
            return "5"
        question, answer = q.group(1), q.group(2).strip()
        good = canonical_answer(question)
        if good in answer and not answer.endswith(("...", ",")):
            return "9"
        if not answer or answer == REFUSAL:
            return "0"
        return "3"


def canonical_answer(prompt: str) -> str:
    """The one correct answer to `prompt` in the simulated world: readable sentences."""
    return readable(prompt, prompt)


class SimulatedProvider(Provider):
    """Plays `SimEngine` plans in-process: sleeps, raises ProviderError, returns answers."""

    kind = "simulated"

    def __init__(self, endpoint: Endpoint, engine: SimEngine) -> None:
        super().__init__(endpoint)
        self.engine = engine
        delay = endpoint.options.get("batch_delay_s", 0.0)
        self.batch_api = SimBatchAPI(SimBatches(engine, float(delay)))

    async def _fail_or_wait(self, plan: SimPlan) -> None:
        where = f"{self.name}"
        if plan.fault == "timeout":
            await asyncio.sleep(plan.timeout_s)
            raise ProviderError(f"{where}: upstream hung", kind="timeout")
        if plan.latency_s > 0:
            await asyncio.sleep(plan.latency_s)
        if plan.fault == "rate_limit":
            raise ProviderError(f"{where}: HTTP 429: rate limited", retry_after=plan.retry_after_s,
                                http_status=429, kind="rate_limit")
        if plan.fault == "server":
            raise ProviderError(f"{where}: HTTP 500: internal error", http_status=500,
                                kind="server")
        if plan.fault == "drop":
            raise ProviderError(f"{where}: connection reset", kind="connection")
        if plan.fault == "context_overflow":
            raise ProviderError(f"{where}: HTTP 400: context_length_exceeded", retryable=False,
                                http_status=400, kind="context_overflow")

    async def complete(self, call: ProviderCall, timeout: float) -> ProviderResponse:
        plan = self.engine.plan(call)
        await self._fail_or_wait(plan)
        a = plan.answer
        return ProviderResponse(a.text, a.finish_reason, a.usage,
                                tuple(a.logprobs) if call.logprobs and a.logprobs else None)

    async def stream(self, call: ProviderCall, timeout: float) -> AsyncIterator[StreamChunk]:
        plan = self.engine.plan(call)
        await self._fail_or_wait(plan)
        a = plan.answer
        for i, piece in enumerate(a.pieces):
            if i == plan.cut_after:
                raise ProviderError(f"{self.name}: stream cut", kind="stream_cut")
            if i and plan.piece_delay_s:
                await asyncio.sleep(plan.piece_delay_s)
            yield StreamChunk(delta=piece)
        yield StreamChunk(finish_reason=a.finish_reason, usage=a.usage)


def call_from_body(body: dict[str, Any], anthropic: bool = False) -> ProviderCall:
    """The call an OpenAI chat-completions (or Anthropic messages) request body makes."""
    msgs = [Message(str(m.get("role", "user")), _content(m.get("content", "")))
            for m in body.get("messages") or []]
    if anthropic and body.get("system"):
        msgs.insert(0, Message("system", _content(body["system"])))
    fmt = body.get("response_format") or {}
    max_out = body.get("max_tokens") or body.get("max_completion_tokens") or 0
    model = str(body.get("model", ""))
    return ProviderCall(model=model, model_id=model, messages=tuple(msgs),
                        max_output_tokens=int(max_out),
                        temperature=float(body.get("temperature") or 0.0),
                        json_mode=isinstance(fmt, dict) and fmt.get("type") == "json_object",
                        logprobs=bool(body.get("logprobs")))


def _content(c: Any) -> str:
    if isinstance(c, list):  # content blocks
        return "".join(str(b.get("text", "")) for b in c if isinstance(b, dict))
    return str(c)


def chat_completion(call: ProviderCall, a: SimAnswer) -> dict[str, Any]:
    """The OpenAI chat.completion object for a simulated answer."""
    choice: dict[str, Any] = {"index": 0, "finish_reason": a.finish_reason,
                              "message": {"role": "assistant", "content": a.text}}
    if call.logprobs:
        choice["logprobs"] = {"content": [{"token": p, "logprob": lp}
                                          for p, lp in zip(a.pieces, a.logprobs, strict=False)]}
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
            "created": int(time.time()), "model": call.model_id, "choices": [choice],
            "usage": {"prompt_tokens": a.input_tokens, "completion_tokens": len(a.pieces),
                      "total_tokens": a.input_tokens + len(a.pieces)}}


_FAULT_STATUS = {"rate_limit": 429, "server": 500, "timeout": 504, "drop": 502,
                 "context_overflow": 400}


class SimBatches:
    """OpenAI's Files and Batches API, played by a SimEngine (in memory, bounded).

    A batch is `in_progress` until `delay_s` after its creation, then the first
    look runs every line through the engine (its scripted faults become error
    lines) and writes the output and error files: no background task.
    """

    MAX_OBJECTS = 10_000

    def __init__(self, engine: SimEngine, delay_s: float = 0.0) -> None:
        self.engine = engine
        self.delay_s = delay_s
        self._files: OrderedDict[str, bytes] = OrderedDict()
        self._batches: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def _keep(self, store: OrderedDict[str, Any], key: str, value: Any) -> None:
        store[key] = value
        while len(store) > self.MAX_OBJECTS:
            store.popitem(last=False)

    def add_file(self, content: bytes, purpose: str, filename: str = "") -> dict[str, Any]:
        fid = f"file-{uuid.uuid4().hex}"
        self._keep(self._files, fid, content)
        return {"id": fid, "object": "file", "bytes": len(content), "purpose": purpose,
                "filename": filename, "created_at": int(time.time())}

    def file_content(self, file_id: str) -> bytes | None:
        return self._files.get(file_id)

    def create(self, input_file_id: str, endpoint: str) -> dict[str, Any]:
        """A new batch; raises ValueError naming what is wrong with the request."""
        if endpoint != "/v1/chat/completions":
            raise ValueError(f"endpoint: {endpoint!r} is not supported (/v1/chat/completions)")
        if input_file_id not in self._files:
            raise ValueError(f"input_file_id: no file {input_file_id!r}")
        bid = f"batch_{uuid.uuid4().hex}"
        batch = {"id": bid, "object": "batch", "endpoint": endpoint, "status": "in_progress",
                 "input_file_id": input_file_id, "completion_window": "24h",
                 "created_at": int(time.time()), "output_file_id": None, "error_file_id": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0},
                 "_due": time.monotonic() + self.delay_s}
        self._keep(self._batches, bid, batch)
        return _public(batch)

    def get(self, batch_id: str) -> dict[str, Any] | None:
        batch = self._batches.get(batch_id)
        if batch is None:
            return None
        if batch["status"] == "in_progress" and time.monotonic() >= batch["_due"]:
            self._run(batch)
        return _public(batch)

    def _run(self, batch: dict[str, Any]) -> None:
        out: list[str] = []
        err: list[str] = []
        raw = self._files.get(batch["input_file_id"], b"").decode("utf-8", "replace")
        for n, text in enumerate(raw.splitlines()):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
                cid = str(line["custom_id"])
                call = call_from_body(line["body"])
            except (ValueError, KeyError, TypeError, AttributeError):
                err.append(json.dumps({"custom_id": f"line-{n}", "response": None, "error": {
                    "code": "invalid_request", "message": f"line {n} is not a valid request"}}))
                continue
            plan = self.engine.plan(call)
            if plan.fault:
                status = _FAULT_STATUS.get(plan.fault, 500)
                err.append(json.dumps({"custom_id": cid, "response": {
                    "status_code": status, "body": {"error": {"message": plan.fault}}},
                    "error": None}))
            else:
                out.append(json.dumps({"custom_id": cid, "response": {
                    "status_code": 200, "body": chat_completion(call, plan.answer)},
                    "error": None}))
        if out:
            batch["output_file_id"] = self.add_file("\n".join(out).encode(), "batch_output")["id"]
        if err:
            batch["error_file_id"] = self.add_file("\n".join(err).encode(), "batch_output")["id"]
        batch["request_counts"] = {"total": len(out) + len(err), "completed": len(out),
                                   "failed": len(err)}
        batch["status"] = "completed"
        batch["completed_at"] = int(time.time())


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


class SimBatchAPI(BatchAPI):
    """The in-process simulated provider's batch API: SimBatches, same JSONL as over HTTP."""

    def __init__(self, batches: SimBatches) -> None:
        self.batches = batches

    async def submit(self, lines: Sequence[tuple[str, ProviderCall]], timeout: float) -> str:
        jsonl = "\n".join(input_line(cid, openai_body(call)) for cid, call in lines)
        f = self.batches.add_file(jsonl.encode(), "batch")
        return str(self.batches.create(f["id"], "/v1/chat/completions")["id"])

    async def poll(self, batch_id: str, timeout: float) -> ProviderBatch:
        b = self.batches.get(batch_id)
        if b is None:
            raise ProviderError(f"batch {batch_id!r} not found", retryable=False,
                                http_status=404, kind="bad_request")
        if b["status"] not in TERMINAL:
            return ProviderBatch(batch_id, b["status"])
        results: list[LineResult] = []
        for key in ("output_file_id", "error_file_id"):
            content = self.batches.file_content(b[key]) if b.get(key) else None
            if content is not None:
                results.extend(parse_output(content.decode(), parse_completion))
        return ProviderBatch(batch_id, b["status"], tuple(results))


def openai_body(call: ProviderCall) -> dict[str, Any]:
    """A chat-completions request body for `call` (what the sim's batch lines carry)."""
    body: dict[str, Any] = {"model": call.model_id, "temperature": call.temperature,
                            "messages": [{"role": m.role, "content": m.content}
                                         for m in call.messages]}
    if call.max_output_tokens > 0:
        body["max_tokens"] = call.max_output_tokens
    if call.json_mode:
        body["response_format"] = {"type": "json_object"}
    return body
