"""The semantic cache's guard: what two prompts must share before one's answer serves the other.

Static embeddings put "Convert 30 miles to km" and "Convert 50 miles to km"
(cosine 0.98) closer than most paraphrases ("Summarize the plot of Hamlet" /
"Give me a summary of the plot of Hamlet": 0.65), so similarity alone cannot
decide. Both prompts must have:

- the same numbers in the same order (digits, also inside words as in x1, and
  number words such as "thirty"): "subtract 3 from 5" is not "subtract 5 from 3";
- the same quoted strings ("...", `...`, '...');
- the same names: a capitalised word inside a sentence (or an all-caps one) on
  one side must be a word on the other, in any case (a sentence's first word is
  capitalised anyway, so it is not taken for a name on its own), and names on
  both sides come in the same order (Celsius to Fahrenheit is not Fahrenheit to
  Celsius);
- the same negations as often (not, no, never, without, n't, ...: "not not" is
  not "not");
- the same letter labels (option B is not option C; "A." and "a." in a list of
  options are one);
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

# numbers (in order), quoted, names, first words, negations (with repeats), content words,
# letters (labels such as option B)
Guard = tuple[tuple[str, ...], ...]
GUARD_PARTS = 7
ALIGN = 0.8
STEM = 5  # words sharing their first 5 letters are one word (summarize / summary)

# Digits anywhere (x1 / x2 differ too); a minus sign only where it cannot be a hyphen.
_NUMBER = re.compile(r"(?:(?<!\w)-)?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?)")
_QUOTED = re.compile(r'"([^"\n]{1,200})"|“([^”\n]{1,200})”|`([^`\n]{1,200})`'
                     r"|(?<!\w)'([^'\n]{1,200})'(?!\w)")
_APOSTROPHE = "\u2019"  # a typographic apostrophe: don't / don\u2019t are one word
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


# One pass over the lowered text: numbers (digits) and words, in order.
_TOKEN = re.compile(_NUMBER.pattern + r"|[^\W\d_]+(?:'[^\W\d_]+)*")
# A letter standing alone is a label (option B, plan C, "A." in a list), unless it is the
# article "a" or the pronoun "I" in a sentence; lowercased labels count when written "b."/"b)".
_LETTER = re.compile(r"(?<![\w'.\u2019])(?:[B-HJ-Z]|[AIa-z](?=[.):?,]|$))(?![\w'\u2019])")
_CAPITAL = re.compile(r"(?<![\w'\u2019])[A-Z\u00c0-\u00d6\u00d8-\u00de][^\W\d_]*"
                      r"(?:['\u2019][^\W\d_]+)*")


def extract(text: str) -> Guard:
    """The guard of a prompt (bounded: the caller passes prompts up to a size cap).

    One regex pass tokenizes; set lookups classify; Python loops only over capitalised words.
    """
    low = text.lower().replace(_APOSTROPHE, "'")
    toks = _TOKEN.findall(low)
    numbers = tuple(_num(t) if not t[0].isalpha() else t for t in toks
                    if not t[0].isalpha() or t in _NUMBER_WORDS)
    negations = sorted("not" if t.endswith("n't") or t == "cannot" else t for t in toks
                       if t in _NEGATIONS or t.endswith("n't"))
    quoted = {next(g for g in m if g).strip().lower() for m in _QUOTED.findall(text)}
    names: dict[str, None] = {}  # in order of appearance
    firsts: set[str] = set()
    for m in _CAPITAL.finditer(text):
        w = m.group()
        if w.endswith(("'s", "\u2019s")):
            w = w[:-2]
        lw = w.lower()
        if len(lw) < 2 or lw in _FILLER or lw in _NEGATIONS or lw in _NUMBER_WORDS:
            continue  # "I", option letters (A. B.), and "Thanks" are not names
        i = m.start() - 1
        while i >= 0 and text[i] in " \t\"'\u201c(*-":
            i -= 1
        start = i < 0 or text[i] in ".!?:;\n"
        if start and not w.isupper():
            firsts.add(lw)
        else:
            names.setdefault(lw)
    words = {t[:-2] if t.endswith("'s") else t for t in toks if t[0].isalpha()}
    words = {w for w in words if len(w) > 1 and "n't" not in w} - _FILLER - _NUMBER_WORDS \
        - _NEGATIONS
    letters = {x.lower() for x in _LETTER.findall(text)}
    return (numbers, tuple(sorted(quoted)), tuple(names), tuple(sorted(firsts)),
            tuple(negations), tuple(sorted(words)), tuple(sorted(letters)))


def _num(s: str) -> str:
    s = s.replace(",", "")  # 1,000 is 1000
    try:
        v = float(s)
    except ValueError:
        return s
    return repr(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def passes(a: Guard, b: Guard, embed: Callable[[str], npt.NDArray[np.float32]]) -> bool:
    """Whether prompts with guards `a` and `b` may share an answer (see the module doc)."""
    if len(a) != GUARD_PARTS or len(b) != GUARD_PARTS:  # another version's entry
        return False
    if a[0] != b[0] or a[1] != b[1] or a[4] != b[4] or a[6] != b[6]:
        return False  # numbers in order, quotes, negations, letter labels
    names_a, first_a, words_a = (set(x) for x in (a[2], a[3], a[5]))
    names_b, first_b, words_b = (set(x) for x in (b[2], b[3], b[5]))
    if not names_a <= names_b | first_b | words_b or not names_b <= names_a | first_a | words_a:
        return False
    if [n for n in a[2] if n in names_b] != [n for n in b[2] if n in names_a]:
        return False  # Celsius to Fahrenheit is not Fahrenheit to Celsius
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
