"""Prompt compression: keep the context that matters to the question, within a token budget.

Asked for per request (`RouteRequest.compress`: `target_ratio` or
`max_input_tokens`) or per category in the config::

    compress:
      min_input_tokens: 256     # shorter prompts are never compressed
      chunk_chars: 600          # paragraphs up to this size stay whole
      keep_last_turn: false     # true: only turns before the last user turn are compressed
      categories:
        qa: {target_ratio: 0.5}
        summarization: {max_input_tokens: 3000}

A request's own setting wins over its category's (`target_ratio: 1` turns it
off). The router compresses before it decides, so `input_tokens`, the cost
estimate and the context fit all see the compressed prompt, and Complete sends
the compressed messages upstream.

Extractive, in the compiled core (`_fast.split_chunks`, `chunk_stats`,
`select_chunks`): the context is cut into paragraphs or sentences, each scored
by the cosine of its static embedding with the final question's, and the best
are kept, in their original order, while they fit the budget. Never touched:
system and developer messages, fenced code blocks, and the final question (the
last user turn's question sentence with the short lines after it: options,
"Answer:"). A message whose context is all dropped is left out.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from routecore import _fast
from routecore.config import _Reader
from routecore.domain import Compression, CompressSpec, Message, RouteRequest
from routecore.errors import ConfigError, InvalidRequest
from routecore.routing.embedding import MAX_TOKENS, StaticEmbedder
from routecore.routing.tokens import count_chat_tokens, count_tokens

__all__ = ["CompressConfig", "Compressor", "check_spec", "parse_compress", "query_text",
           "question_start"]

# A budget larger than any context window: beyond it the field is a mistake.
MAX_INPUT_TOKENS = 10_000_000
PROTECTED_ROLES = frozenset({"system", "developer"})
# The final question: the last long line's question sentence plus up to this many
# short lines after it (answer options, "Answer:").
_SHORT_LINE = 160
_MAX_TAIL_LINES = 8
_LAST_SENTENCES = 3
_WINDOW = 4000  # the question is looked for in the last this-many characters of its line
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f][)\]\"'\u201d\u2019]*(?:[ \t]+|$)")
_QUESTION_END = re.compile(r"[?\uff1f][)\]\"'\u201d\u2019]*\s*$")
# The selection is redone with a smaller budget when the joined text counts more
# tokens than its chunks did (the estimate is not exactly additive).
_FIT_ROUNDS = 8


@dataclass(frozen=True, slots=True)
class CompressConfig:
    """The validated `compress` section."""

    min_input_tokens: int = 256
    chunk_chars: int = 600
    keep_last_turn: bool = False
    categories: Mapping[str, CompressSpec] = field(default_factory=dict)


def check_spec(spec: CompressSpec, path: str = "compress") -> None:
    """Raise InvalidRequest naming the field unless `spec` asks for exactly one valid budget."""
    ratio, most = spec.target_ratio, spec.max_input_tokens
    if ratio is not None and most is not None:
        raise InvalidRequest(f"{path}: give target_ratio or max_input_tokens, not both")
    if ratio is None and most is None:
        raise InvalidRequest(f"{path}: give target_ratio or max_input_tokens")
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, int | float)
                              or not math.isfinite(ratio) or not 0.0 < ratio <= 1.0):
        raise InvalidRequest(f"{path}.target_ratio: must be in (0, 1], got {ratio}")
    if most is not None and (isinstance(most, bool) or not isinstance(most, int)
                             or not 1 <= most <= MAX_INPUT_TOKENS):
        raise InvalidRequest(
            f"{path}.max_input_tokens: must be an integer in [1, {MAX_INPUT_TOKENS}], got {most}")


def parse_compress(extra: Mapping[str, Any], categories: Sequence[str]) -> CompressConfig | None:
    """Validate the `compress` section; None when absent. Raises ConfigError naming each path."""
    node = extra.get("compress")
    if node is None:
        return None
    r, p = _Reader(), "compress"
    n = r.mapping(node, p)
    r.unknown(n, p, {"min_input_tokens", "chunk_chars", "keep_last_turn", "categories"})
    min_in = r.number(n, "min_input_tokens", p, lo=0, hi=MAX_INPUT_TOKENS, integer=True,
                      default=256)
    chars = r.number(n, "chunk_chars", p, lo=16, hi=100_000, integer=True, default=600)
    keep = r.get(n, "keep_last_turn", p, bool, False)
    specs: dict[str, CompressSpec] = {}
    cats = r.mapping(n.get("categories"), f"{p}.categories", required=False)
    for name, sub in cats.items():
        cp = f"{p}.categories.{name}"
        if name not in categories:
            r.fail(cp, f"unknown category (known: {', '.join(categories)})")
            continue
        seen = len(r.problems)
        s = r.mapping(sub, cp)
        r.unknown(s, cp, {"target_ratio", "max_input_tokens"})
        ratio = r.number(s, "target_ratio", cp, lo=0.0, hi=1.0, default=None)
        most = r.number(s, "max_input_tokens", cp, lo=1, hi=MAX_INPUT_TOKENS, integer=True,
                        default=None)
        if len(r.problems) > seen:
            continue
        if ratio is not None and ratio <= 0.0:
            r.fail(f"{cp}.target_ratio", "must be > 0")
        elif (ratio is None) == (most is None):
            r.fail(cp, "give target_ratio or max_input_tokens (one of them)")
        else:
            specs[str(name)] = CompressSpec(ratio, most)
    if r.problems:
        raise ConfigError(r.problems)
    return CompressConfig(min_input_tokens=int(min_in), chunk_chars=int(chars),
                          keep_last_turn=bool(keep), categories=specs)


def _sentence_starts(line: str) -> list[int]:
    return [0] + [m.end() for m in _SENTENCE_END.finditer(line) if m.end() < len(line)]


_QUESTION_MARK = re.compile(r"[?\uff1f][)\]\"'\u201d\u2019]*(?=\s|$)")


def _tail_start(text: str) -> int:
    """Where the final question starts in `text` (prose, no trailing code block): the tail
    `_last_ask` finds, reaching back to the last question sentence before it when the tail
    asks nothing (a question followed by a long instruction line, or by more option lines
    than the tail takes), so the question itself is never compressed away."""
    start = _last_ask(text)
    if _QUESTION_MARK.search(text, start) is not None:
        return start
    base = max(0, start - _WINDOW)
    marks = list(_QUESTION_MARK.finditer(text, base, start))
    if not marks:
        return start
    q = marks[-1].start()
    ls = max(base, text.rfind("\n", 0, q) + 1)
    return ls + max(s for s in _sentence_starts(text[ls:q + 1]) if s <= q - ls)


def _last_ask(text: str) -> int:
    """The last long line's question sentence (or last sentence) with the short lines
    after it; a question on its own short lines alone; a turn of short lines whole."""
    pos = len(text.rstrip())
    tail = pos
    lines = 0
    asks = False  # a short line of the tail is a question ("...\n\nHow tall is it?")
    while pos > 0:
        ls = text.rfind("\n", 0, pos) + 1
        line = text[ls:pos]
        if line.strip():
            if len(line) > _SHORT_LINE:
                break
            if lines == _MAX_TAIL_LINES:
                return tail
            lines += 1
            tail = ls
            asks = asks or _QUESTION_END.search(line) is not None
        elif tail - ls > _WINDOW:
            return tail  # a gap of blank lines this long ends the question (and the walk)
        pos = ls - 1 if ls > 0 else 0
    if pos <= 0:
        return 0  # only short lines: the whole turn is the question
    if asks:
        return tail
    # The long line text[ls:pos]: from its question sentence (or its last sentence) on.
    base = max(ls, pos - _WINDOW)
    line = text[base:pos]
    starts = _sentence_starts(line)
    last = starts[-_LAST_SENTENCES:]
    ends = [*last[1:], len(line)]
    for s, e in zip(last, ends, strict=True):
        if _QUESTION_END.search(line, s, e) is not None:
            return base + s
    return base + last[-1]


def question_start(text: str, chunk_chars: int = 600) -> int:
    """Where the final question starts in the last user turn: everything from there
    on is never touched. A trailing code block belongs to the question, with the
    prose before it ("Fix this: ```...```")."""
    spans = _fast.split_chunks(text, chunk_chars)
    end = len(text)
    for r in range(spans.shape[0] - 1, -1, -1):  # from the end: usually one or two rows
        a, b, kind = (int(x) for x in spans[r])
        if kind == _CODE or not text[a:b].strip():
            end = a
        else:
            break
    return _tail_start(text[:end])


_CODE = 1


@dataclass(slots=True)
class _Part:
    """One message as compression sees it: context (compressible) + question (kept)."""

    role: str
    context: str
    question: str
    spans: Any = None  # int64[n, 3] chunks of context


class Compressor:
    """Applies the compress policy to requests; immutable after construction."""

    __slots__ = ("_embedder", "config")

    def __init__(self, config: CompressConfig | None) -> None:
        self.config = config or CompressConfig()
        self._embedder: StaticEmbedder | None = None
        if config is not None:  # configured: load the vectors now, not on a request
            self._embedder = StaticEmbedder.shipped()

    def spec_for(self, req: RouteRequest, category: str) -> CompressSpec | None:
        """The request's own setting, else its category's; None: no compression."""
        spec = req.compress if req.compress is not None else self.config.categories.get(category)
        if spec is None or spec.target_ratio == 1.0:
            return None
        return spec

    def compress(self, req: RouteRequest, category: str) -> Compression | None:
        """The compressed request's prompt or messages; None when nothing is saved."""
        spec = self.spec_for(req, category)
        if spec is None:
            return None
        t0 = time.perf_counter_ns()
        before = count_chat_tokens(req.messages) if req.messages else count_tokens(req.prompt)
        if spec.max_input_tokens is not None:
            budget = spec.max_input_tokens
        else:
            budget = math.floor(float(spec.target_ratio or 1.0) * before)
        if before <= budget or before < self.config.min_input_tokens:
            return None
        msgs = req.messages or (Message("user", req.prompt),)
        parts = self._parts(msgs)
        query = query_text(next((p.question for p in reversed(parts)
                                 if p.role == "user" and p.question), "") or msgs[-1].content,
                           [p.context for p in parts])
        if self._embedder is None:
            self._embedder = StaticEmbedder.shipped()
        table = self._embedder.table
        qvec = self._embedder.embed(query)
        scores, tokens, protected, owners, counts = [], [], [], [], []
        n = 0
        for i, p in enumerate(parts):
            if not p.context:
                continue
            p.spans = _fast.split_chunks(p.context, self.config.chunk_chars)
            owners.append(i)
            counts.append(p.spans.shape[0])
            n += p.spans.shape[0]
            sc, tk = _fast.chunk_stats(table, p.context, p.spans, qvec, MAX_TOKENS)
            scores.append(sc)
            tokens.append(tk)
            protected.append((p.spans[:, 2] == _CODE).astype(np.uint8))
        if n == 0:
            return None
        sc_all, tk_all, pr_all = (np.concatenate(scores), np.concatenate(tokens),
                                  np.concatenate(protected))
        # Each chunk's (start, end, message): a round lists only the chunks it keeps, so a
        # 1 MB context's tens of thousands of chunks are not listed on every fit round.
        spans_all = np.concatenate([p.spans for p in parts if p.context])
        pooled = (spans_all[:, 0], spans_all[:, 1], np.repeat(owners, counts))
        chunk_budget = budget - (before - int(tk_all.sum()))
        for _ in range(_FIT_ROUNDS):
            keep = _fast.select_chunks(sc_all, tk_all, pr_all, chunk_budget)
            new = _assemble(parts, keep, pooled)
            after = count_chat_tokens(new) if req.messages else count_tokens(new[0].content)
            over = after - budget
            kept = keep.astype(bool)
            if over <= 0 or not (kept & ~pr_all.astype(bool)).any():
                break
            # Below what was kept, so the next pick is strictly smaller.
            chunk_budget = int(tk_all[kept].sum()) - over
        dropped = int(n - keep.sum())
        if dropped == 0 or after >= before:
            return None
        micros = (time.perf_counter_ns() - t0) // 1000
        if req.messages:
            return Compression(before, after, n, dropped, "", new, micros)
        return Compression(before, after, n, dropped, new[0].content, (), micros)

    def _parts(self, msgs: Sequence[Message]) -> list[_Part]:
        last_user = max((i for i, m in enumerate(msgs) if m.role == "user"), default=-1)
        out = []
        for i, m in enumerate(msgs):
            if m.role in PROTECTED_ROLES:
                out.append(_Part(m.role, "", m.content))
            elif i == last_user:
                q = 0 if self.config.keep_last_turn else question_start(
                    m.content, self.config.chunk_chars)
                q = len(m.content[:q].rstrip())  # the break before the question stays with it
                out.append(_Part(m.role, m.content[:q], m.content[q:]))
            else:
                out.append(_Part(m.role, m.content, ""))
        return out


def query_text(question: str, contexts: Sequence[str]) -> str:
    """What the context is scored against: the question without the short lines the context
    repeats word for word (a few-shot prompt's "Answer:" and instructions), which match
    every example alike, not the relevant one."""
    seen = {ln.strip() for c in contexts for ln in c.split("\n") if len(ln) <= _SHORT_LINE}
    own = [ln for ln in question.split("\n") if ln.strip() and ln.strip() not in seen]
    return "\n".join(own) or question


def _assemble(parts: Sequence[_Part], keep: Any, pooled: tuple[Any, Any, Any]
              ) -> tuple[Message, ...]:
    rows = np.flatnonzero(keep)
    s, e, o = (a[rows] for a in pooled)
    # Kept chunks that touch, in one message, are one slice (a run of tiny sentences).
    first = np.ones(rows.shape[0], dtype=bool)
    first[1:] = (s[1:] != e[:-1]) | (o[1:] != o[:-1])
    heads = np.flatnonzero(first)
    last = np.append(heads[1:] - 1, rows.shape[0] - 1) if heads.shape[0] else heads
    starts, ends, owner = s[heads].tolist(), e[last].tolist(), o[heads].tolist()
    kept: list[list[str]] = [[] for _ in parts]
    for i, a, b in zip(owner, starts, ends, strict=True):
        kept[i].append(parts[i].context[a:b])
    out = []
    for p, pieces in zip(parts, kept, strict=True):
        if not p.context:
            out.append(Message(p.role, p.question))
            continue
        content = "".join(pieces) + p.question
        if content.strip() or p.question:
            out.append(Message(p.role, content))
    return tuple(out)


def applied(req: RouteRequest, c: Compression | None) -> RouteRequest:
    """`req` with its prompt or messages replaced by the compressed ones (unchanged for None)."""
    if c is None:
        return req
    return replace(req, prompt=c.prompt, messages=c.messages)
