"""The semantic cache's guard: what two prompts must share before one's answer serves the other.

Static embeddings put "Convert 30 miles to km" and "Convert 50 miles to km"
(cosine 0.98) closer than most paraphrases ("Summarize the plot of Hamlet" /
"Give me a summary of the plot of Hamlet": 0.65), so similarity alone cannot
decide. Both prompts must have:

- the same numbers (digits, and number words such as "thirty");
- the same quoted strings ("...", `...`, '...');
- the same names: a capitalised word inside a sentence (or an all-caps one) on
  one side must be a word on the other, in any case (a sentence's first word is
  capitalised anyway, so it is not taken for a name on its own);
- the same negations (not, no, never, without, n't, ...);
- no unmatched content word: a word on one side that the other lacks (after
  filler words such as "please", "tell me", "what is") must have a counterpart
  there with the same stem or a word-vector cosine >= `ALIGN` (explain /
  explanation 0.87 pass; value / key 0.24, France / Spain 0.65, buy / sell 0.77
  do not).

The guard of a stored prompt is computed once, when it is stored, and travels
with its semantic entry (state/cache.py) as tuples of strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

Guard = tuple[tuple[str, ...], ...]  # numbers, quoted, names, first words, negations, words
ALIGN = 0.8
STEM = 5  # words sharing their first 5 letters are one word (summarize / summary)

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,_]*(?:\.\d+)?")
_QUOTED = re.compile(r'"([^"\n]{1,200})"|“([^”\n]{1,200})”|`([^`\n]{1,200})`'
                     r"|(?<!\w)'([^'\n]{1,200})'(?!\w)")
_APOSTROPHE = "\u2019"  # a typographic apostrophe: don't / don\u2019t are one word
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['\u2019](?=[^\W\d_]))*")
_NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy "
    "eighty ninety hundred thousand million billion trillion half quarter double twice "
    "triple first second third fourth fifth".split())
_NEGATIONS = frozenset(
    "not no never none nothing nobody nowhere neither nor without cannot isn't aren't wasn't "
    "weren't don't doesn't didn't won't wouldn't can't couldn't shouldn't hasn't haven't "
    "hadn't mustn't except excluding exclude avoid".split())
_FILLER = frozenset(
    "a an the of to in on at by for from with into about as and or but if then so than "
    "is are was were be been being am do does did done have has had having will would "
    "shall should can could may might must i me my mine you your yours we us our he she "
    "it its they them their this that these those there here what which who whom whose "
    "how why when where please kindly tell give show let know help need want like just "
    "really quick quickly briefly short brief some any all each every also very much many "
    "way question answer something thing things get got make say said using use via "
    "hey hi hello thanks thank".split())


def extract(text: str) -> Guard:
    """The guard of a prompt (bounded: the caller passes prompts up to a size cap)."""
    numbers = {_num(m.group()) for m in _NUMBER.finditer(text)}
    quoted = {next(g for g in m.groups() if g is not None).strip().lower()
              for m in _QUOTED.finditer(text)}
    names: set[str] = set()
    firsts: set[str] = set()
    negations: set[str] = set()
    words: set[str] = set()
    for m in _WORD.finditer(text):
        w = m.group()
        low = w.lower().replace(_APOSTROPHE, "'")
        if low.endswith("'s"):
            low, w = low[:-2], w[:-2]
        if low in _NUMBER_WORDS:
            numbers.add(low)
        if low in _NEGATIONS or low.endswith("n't"):
            negations.add("not" if low.endswith("n't") or low == "cannot" else low)
            continue
        if w[0].isupper() and low != "i":
            i = m.start() - 1
            while i >= 0 and text[i] in " \t\"'“(*-":
                i -= 1
            start = i < 0 or text[i] in ".!?:;\n"
            (firsts if start and not w.isupper() else names).add(low)
        if low not in _FILLER and low not in _NUMBER_WORDS and len(low) > 1:
            words.add(low)
    return (tuple(sorted(numbers)), tuple(sorted(quoted)), tuple(sorted(names)),
            tuple(sorted(firsts)), tuple(sorted(negations)), tuple(sorted(words)))


def _num(s: str) -> str:
    s = s.replace(",", "").replace("_", "").lstrip("+")
    try:
        v = float(s)
    except ValueError:
        return s
    return repr(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def passes(a: Guard, b: Guard, embed: Callable[[str], npt.NDArray[np.float32]]) -> bool:
    """Whether prompts with guards `a` and `b` may share an answer (see the module doc)."""
    num_a, quo_a, names_a, first_a, neg_a, words_a = (set(x) for x in a)
    num_b, quo_b, names_b, first_b, neg_b, words_b = (set(x) for x in b)
    if num_a != num_b or quo_a != quo_b or neg_a != neg_b:
        return False
    if not names_a <= names_b | first_b | words_b or not names_b <= names_a | first_a | words_a:
        return False
    return _aligned(words_a, words_b, embed) and _aligned(words_b, words_a, embed)


def _aligned(mine: set[str], theirs: set[str],
             embed: Callable[[str], npt.NDArray[np.float32]]) -> bool:
    """Every word of `mine` that `theirs` lacks has a same-stem or near word there."""
    missing = [w for w in mine - theirs if not any(_same_stem(w, t) for t in theirs)]
    if not missing:
        return True
    if not theirs:
        return False
    other = np.stack([embed(t) for t in sorted(theirs)])
    return all(float(np.max(other @ embed(w))) >= ALIGN for w in missing)


def _same_stem(a: str, b: str) -> bool:
    n = min(len(a), len(b))
    if n >= STEM:
        return a[:STEM] == b[:STEM]
    return n >= 3 and (a.startswith(b) or b.startswith(a)) and abs(len(a) - len(b)) <= 2
