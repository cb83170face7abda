"""How long the answer will be, estimated from the request (in tokens, with why).

"Write a 5,000-word story" is not the default 512 tokens, and "answer in one
word" is not either. `OutputLength.estimate` reads the ask (the last user message:
its first and last `WINDOW` characters, so a huge pasted document costs nothing
more) for, in order:

1. counted asks: a number (digits with thousands commas, decimals, `k`, or a
   number word up to "hundred", "a dozen", "a few") and a unit ("words",
   "sentences", "paragraphs", "pages", "lines", list items such as "ideas",
   "tips", "examples"...), as in "in 100 words", "list 20 ideas", "a 5,000-word
   story", "three paragraphs". Several: the one led by "in / under / at most"
   or a writing verb wins over one describing the input ("summarize this
   5,000-word article in 100 words" asks for 100 words).
2. work on a long input (over 200 tokens): translate / rewrite / proofread give
   about the input's length back; summarize a fraction of it;
3. forms with a known length: one word / yes or no (5 tokens), a haiku, a
   limerick, a sonnet, a tweet, one sentence, an essay, a story, a chapter...

Nothing found: the configured `routing.default_output_tokens`. The estimate
is capped by the request's `max_output_tokens` (the answer cannot be longer)
and by `MAX_ESTIMATE`. Words are ~1.33 tokens (English, cl100k-like).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from routecore.routing.phrases import PhraseMatcher

WINDOW = 300  # characters read from each end of the ask
MAX_ESTIMATE = 1_000_000
TOKENS_PER_WORD = 4.0 / 3.0

# Tokens per unit asked for.
_UNITS: dict[str, float] = {
    "token": 1.0, "word": TOKENS_PER_WORD, "character": 0.25, "char": 0.25,
    "sentence": 22.0, "line": 12.0, "paragraph": 120.0, "page": 650.0,
    "item": 30.0, "idea": 30.0, "example": 40.0, "tip": 30.0, "reason": 30.0,
    "step": 30.0, "point": 30.0, "bullet": 25.0, "bullet point": 25.0, "fact": 30.0,
    "question": 25.0, "name": 6.0, "title": 12.0, "headline": 14.0,
    "tagline": 12.0, "slogan": 12.0, "joke": 40.0, "haiku": 25.0, "limerick": 50.0,
    "poem": 200.0, "verse": 40.0, "stanza": 40.0, "story": 900.0, "essay": 1200.0,
    "chapter": 4000.0, "suggestion": 30.0, "alternative": 25.0, "variation": 30.0,
    "synonym": 4.0, "keyword": 4.0, "test case": 60.0,
}
_NUMBER_WORDS: dict[str, float] = {
    "one": 1, "a single": 1, "single": 1, "two": 2, "a couple of": 2, "a pair of": 2,
    "three": 3, "a few": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a dozen": 12, "dozen": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "several": 5, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "a hundred": 100,
    "one hundred": 100, "hundred": 100, "a thousand": 1000, "one thousand": 1000,
}
_UNIT_RE = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
# A count in digits (thousands commas, decimals, a "k"), read on the lower-cased ask.
_DIGITS = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d{1,7}(?:\.\d+)?)(?:\s?(k)\b)?")
# After a count: an optional "-" or space, up to two adjectives ("20 short ideas",
# "five creative names"), then a unit (plural or not).
_UNIT_AFTER = re.compile(r"[\s-]{0,2}(?:[a-z]+[\s-]){0,2}?" rf"({_UNIT_RE})(?:s|es)?\b")
# Before a count: it limits the answer (+) or it is a writing verb (+); it describes
# the input (-).
_LIMITS = re.compile(r"\b(?:in|under|within|at most|no more than|fewer than|less than|max(?:imum)?"
                     r"|up to|about|around|roughly|approximately|exactly|only|just|of)\s*$",
                     re.IGNORECASE)
_VERBS = re.compile(r"\b(?:write|list|give|generate|produce|create|compose|draft|name|suggest"
                    r"|provide|brainstorm|come up with|make|tell|need|want|craft|outline"
                    r"|prepare)\b[^.!?\n]{0,24}$", re.IGNORECASE)
_DIGIT = re.compile(r"[0-9]")
_INPUT = re.compile(r"\b(?:this|the following|the attached|attached|above|below|my|these|that"
                    r"|the)\s*$", re.IGNORECASE)
# Forms with a known length (tokens), checked in this order.
# Forms with a known length: (phrases, tokens, why), in the order they are preferred.
_FORMS: tuple[tuple[tuple[str, ...], float, str], ...] = (
    (("one word", "single word", "one-word", "yes or no", "true or false", "just the number",
      "just the name", "only the number", "only the name"), 5.0, "a one-word answer"),
    (("haiku", "haikus"), 30.0, "a haiku"),
    (("limerick", "limericks"), 60.0, "a limerick"),
    (("tweet", "tweets"), 70.0, "a tweet"),
    (("one sentence", "single sentence", "one-liner", "one liner"), 30.0, "one sentence"),
    (("sonnet", "sonnets"), 200.0, "a sonnet"),
    (("briefly", "short answer", "concise", "concisely", "tl;dr", "in short", "in brief"),
     120.0, "a brief answer"),
    (("novel", "novella", "screenplay"), 8000.0, "a long-form work"),
    (("chapter", "chapters"), 4000.0, "a chapter"),
    (("essay", "article", "blog post", "report", "white paper", "whitepaper"), 1200.0,
     "an essay or article"),
    (("story", "stories"), 900.0, "a story"),
    (("in detail", "in great detail", "comprehensive", "thorough", "thoroughly",
      "step by step", "in depth", "in-depth"), 1000.0, "a detailed answer"),
)
_SAME_LENGTH = ("translate", "translation", "rewrite", "rephrase", "paraphrase", "proofread",
                "correct the grammar", "fix the grammar", "correct the spelling",
                "fix the spelling", "reformat", "convert")
_SUMMARY = ("summarize", "summarise", "summary", "condense", "boil down", "tl;dr", "shorten",
            "key points", "gist")
_KIND_UNIT, _KIND_NUMBER, _KIND_SAME, _KIND_SUMMARY = -1, -2, -3, -4


@dataclass(frozen=True, slots=True)
class OutputEstimate:
    tokens: int
    basis: str  # why: "asked for 5,000 words", "a haiku", "default", "max_output_tokens"


def _window(text: str) -> str:
    return text if len(text) <= 2 * WINDOW else text[:WINDOW] + "\n" + text[-WINDOW:]


def _counted(low: str, number_words: list[str]) -> tuple[float, str] | None:
    """The best counted ask in the lower-cased ask `low`: (tokens, basis). Counts are
    its digit runs and the `number_words` the phrase matcher saw in it."""
    counts: list[tuple[int, int, float, str]] = []  # (start, end, n, as written)
    if _DIGIT.search(low):
        for m in _DIGITS.finditer(low):
            n = float(m.group(1).replace(",", "")) * (1000.0 if m.group(2) else 1.0)
            counts.append((m.start(), m.end(), n, m.group(1) + ("k" if m.group(2) else "")))
    for word in number_words:
        at = low.find(word)
        while at >= 0:
            end = at + len(word)
            if (at == 0 or not low[at - 1].isalnum()) and (end == len(low)
                                                           or not low[end].isalnum()):
                counts.append((at, end, _NUMBER_WORDS[word], word))
            at = low.find(word, end)
    best: tuple[int, int, float, str] | None = None  # (score, -position, tokens, basis)
    for start, end, n, shown in counts:
        if any(s <= start and end <= e and e - s > end - start for s, e, _, _ in counts):
            continue  # "hundred" inside "one hundred"
        unit_m = _UNIT_AFTER.match(low, end)
        if unit_m is None or n <= 0:
            continue
        unit = unit_m.group(1)
        before = low[max(0, start - 40):start]
        score = 0
        if _LIMITS.search(before):
            score += 2
        if _VERBS.search(before):
            score += 2
        if _INPUT.search(before):
            score -= 3
        per = _UNITS[unit]
        tokens = n * per + (10.0 if per >= 20 else 3.0)  # list framing / punctuation
        cand = (score, -start, tokens, f"asked for {shown} {unit}{'s' if n != 1 else ''}")
        if best is None or cand[:2] > best[:2]:
            best = cand
    if best is None or best[0] < -1:
        return None
    return best[2], best[3]


class OutputLength:
    """The estimator for one config: its phrase table is built once (a router's life).

    The common request names no length at all; one pass of the compiled phrase
    matcher over the ask's ends says so in a few microseconds. Only an ask holding
    a unit word and a number runs the regular expression that reads the count.
    """

    def __init__(self, default_tokens: int) -> None:
        self.default = default_tokens
        phrases: list[str] = []
        kinds: list[int] = []  # per phrase: a form's index, or a _KIND_*
        for unit in _UNITS:
            for p in (unit, unit + "s", unit + "es"):
                phrases.append(p)
                kinds.append(_KIND_UNIT)
        for w in _NUMBER_WORDS:
            phrases.append(w)
            kinds.append(_KIND_NUMBER)
        for i, (forms, _, _) in enumerate(_FORMS):
            for p in forms:
                phrases.append(p)
                kinds.append(i)
        for group, kind in ((_SAME_LENGTH, _KIND_SAME), (_SUMMARY, _KIND_SUMMARY)):
            for p in group:
                phrases.append(p)
                kinds.append(kind)
        self._matcher = PhraseMatcher(phrases)
        self._zeros = bytes(4 * self._matcher.n_slots)  # no hit at all (int32 slots)
        words = self._matcher.slots.tolist()
        self._slot_word: dict[int, str] = {words[i]: p for i, p in enumerate(phrases)
                                           if kinds[i] == _KIND_NUMBER}
        # Per table slot, the kinds of the phrases that hash there (several phrases may
        # share a slot: "tl;dr" is both brief and a summary).
        self._slot_kinds: list[tuple[int, ...]] = [()] * self._matcher.n_slots
        for slot, kind in zip(self._matcher.slots.tolist(), kinds, strict=True):
            if kind not in self._slot_kinds[slot]:
                self._slot_kinds[slot] = (*self._slot_kinds[slot], kind)

    def estimate(self, ask: str, input_tokens: int,
                 max_output_tokens: int | None = None) -> OutputEstimate:
        """The answer's expected length in tokens for the ask (the last user message) of
        a request of `input_tokens`; `max_output_tokens` (when set) caps it."""
        text = _window(ask)
        hits = self._matcher.slot_hits(text)
        found: tuple[float, str] | None = None
        if hits.tobytes() != self._zeros:
            slots = np.flatnonzero(hits).tolist()
            kinds = {k for slot in slots for k in self._slot_kinds[slot]}
            if _KIND_UNIT in kinds:
                found = _counted(text.lower(), [self._slot_word[s] for s in slots
                                                if s in self._slot_word])
            if found is None and input_tokens > 200:  # work on a long input, before forms
                if _KIND_SAME in kinds:  # that its text may name ("the report")
                    found = (float(input_tokens), "about the input's length")
                elif _KIND_SUMMARY in kinds:
                    found = (max(60.0, min(600.0, input_tokens / 5.0)), "a summary of the input")
            if found is None:
                form = min((k for k in kinds if k >= 0), default=-1)
                if form >= 0:
                    found = _FORMS[form][1], _FORMS[form][2]
        if found is None:
            n, basis = self.default, "default"
        else:
            n, basis = max(1, min(MAX_ESTIMATE, round(found[0]))), found[1]
        if max_output_tokens and n > max_output_tokens:
            return OutputEstimate(max_output_tokens, f"{basis}, capped by max_output_tokens")
        return OutputEstimate(n, basis)
