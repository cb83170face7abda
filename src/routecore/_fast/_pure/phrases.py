"""Phrase hashing and hits: the twin of phrases.pyx.

Computes exactly what the C side computes; tests/parity proves it.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np
import numpy.typing as npt

from .._constants import (
    FNV_OFFSET,
    FNV_PRIME,
    PHRASE_MAX_WORDS,
    PHRASE_MULT,
)
from .features import _single_char_word, lower_cp
from .tokens import M64

F64 = npt.NDArray[np.float64]

def word_hashes(text: str) -> list[int]:
    """FNV-1a hash of each of extract()'s words, in order.

    A word is a run of word characters (str.isalnum() or "_"); every Han or
    kana character is a word of its own; code points are lower-cased by
    lower_cp. Anything else (space, punctuation, "-", ";") separates words.
    """
    out: list[int] = []
    h = FNV_OFFSET
    wlen = 0
    for c in text:
        if c.isalnum() or c == "_":
            cp = ord(c)
            lc = lower_cp(cp)
            if _single_char_word(cp):
                if wlen:
                    out.append(h)
                    h, wlen = FNV_OFFSET, 0
                out.append(((FNV_OFFSET ^ lc) * FNV_PRIME) & M64)
            else:
                h = ((h ^ lc) * FNV_PRIME) & M64
                wlen += 1
        elif wlen:
            out.append(h)
            h, wlen = FNV_OFFSET, 0
    if wlen:
        out.append(h)
    return out


def _phrase_mix(h: int, w: int) -> int:
    return ((h * PHRASE_MULT) & M64) ^ w


def phrase_hash(phrase: str) -> int:
    """Hash of a phrase's words: h1 = H(w1), h(i) = (h(i-1) * PHRASE_MULT) ^ H(wi)."""
    ws = word_hashes(phrase)
    if not ws:
        raise ValueError(f"phrase has no words: {phrase!r}")
    if len(ws) > PHRASE_MAX_WORDS:
        raise ValueError(
            f"phrase has {len(ws)} words, more than {PHRASE_MAX_WORDS}: {phrase!r}"
        )
    h = ws[0]
    for w in ws[1:]:
        h = _phrase_mix(h, w)
    return h


def phrase_hits(text: str, table: npt.ArrayLike, n_max: int) -> npt.NDArray[np.int32]:
    """Occurrences of each table hash among the text's runs of 1..n_max words.

    table is sorted ascending; a run whose hash equals several (duplicate)
    entries counts on the first of them. Overlapping runs all count.
    """
    if n_max < 1 or n_max > PHRASE_MAX_WORDS:
        raise ValueError(f"n_max must be in 1..{PHRASE_MAX_WORDS}")
    t = np.ascontiguousarray(table, dtype=np.uint64)
    if t.ndim != 1:
        raise ValueError("table must be one-dimensional")
    k = t.shape[0]
    out = np.zeros(k, dtype=np.int32)
    if k == 0:
        return out
    keys = t.tolist()
    if any(keys[j] < keys[j - 1] for j in range(1, k)):
        raise ValueError("table must be sorted ascending")
    ws = word_hashes(text)
    for i in range(len(ws)):
        h = ws[i]
        for length in range(1, n_max + 1):
            if length > 1:
                if i + length > len(ws):
                    break
                h = _phrase_mix(h, ws[i + length - 1])
            j = bisect_left(keys, h)
            if j < k and keys[j] == h:
                out[j] += 1
    return out
