"""Hashed n-gram features and scalars: the twin of features.pyx.

Computes exactly what the C side computes; tests/parity proves it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .._constants import (
    CHAR_SEED,
    CODE_KEYWORDS,
    FAMILY_SEEDS,
    FAMILY_WEIGHTS,
    FNV_OFFSET,
    FNV_PRIME,
    IMPERATIVE_WORDS,
    MATH_WORDS,
    NGRAM_MULTS,
    SCALAR_NAMES,
    WH_WORDS,
)
from .tokens import GOLDEN, M64, S_HAN, S_HANGUL, S_KANA, count_tokens, script_of

F64 = npt.NDArray[np.float64]

def lower_cp(cp: int) -> int:
    """Fixed lower-casing table: ASCII, Latin-1, Greek, Cyrillic basic blocks."""
    if 0x41 <= cp <= 0x5A:
        return cp + 32
    if cp < 0xC0:
        return cp
    if cp <= 0xDE:
        return cp + 32 if cp != 0xD7 else cp
    if 0x391 <= cp <= 0x3AB and cp != 0x3A2:
        return cp + 32
    if 0x410 <= cp <= 0x42F:
        return cp + 32
    if 0x400 <= cp <= 0x40F:
        return cp + 80
    return cp


def fmix64(x: int) -> int:
    """MurmurHash3's 64-bit finaliser: spreads FNV's weak low bits."""
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & M64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & M64
    x ^= x >> 33
    return x


def fnv_word(word: str) -> int:
    """FNV-1a over code points (one xor-multiply per code point)."""
    h = FNV_OFFSET
    for c in word:
        h = ((h ^ ord(c)) * FNV_PRIME) & M64
    return h


def _kw_table(words: Sequence[str]) -> frozenset[int]:
    return frozenset(fnv_word(w) for w in words)


_CODE_KW = _kw_table(CODE_KEYWORDS)
_MATH_KW = _kw_table(MATH_WORDS)
_IMPER_KW = _kw_table(IMPERATIVE_WORDS)
_WH_KW = _kw_table(WH_WORDS)

_LOG_TABLE = 4096
_LOG1P_TENTHS = [math.log1p(a / 10.0) for a in range(_LOG_TABLE)]
MAX_DIM = 1 << 30


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & M64


_MIX: dict[int, int] = {}


def char_mix(lc: int) -> int:
    """The 64-bit mix of a lower-cased code point (memoised; C keeps a Latin-1 table)."""
    m = _MIX.get(lc)
    if m is None:
        m = _MIX[lc] = fmix64((CHAR_SEED + lc) & M64)
    return m


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _single_char_word(cp: int) -> bool:
    # Han and kana are written without spaces: each char is a "word".
    s = script_of(cp)
    return s in (S_HAN, S_KANA)


def extract(text: str,
            dim: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], int]:
    """Hashed n-gram vector (L2-normalised), the scalar features, and the token
    estimate (count_tokens; its log1p is a scalar), in one walk."""
    if dim < 1 or dim & (dim - 1) or dim > MAX_DIM:
        raise ValueError("dim must be a power of two <= 2**30")
    # Signed sum of family weights (in tenths) per bucket.
    acc = [0] * dim
    mask = dim - 1
    w_tri = FAMILY_WEIGHTS[2]

    def add(family: int, h: int) -> None:
        x = fmix64(h ^ FAMILY_SEEDS[family])
        w = FAMILY_WEIGHTS[family]
        acc[x & mask] += -w if x >> 63 else w

    def add_gram(mult: int, h: int, w: int) -> None:
        x = (h * mult) & M64
        acc[(x >> 32) & mask] += -w if x >> 63 else w

    n = len(text)
    # Char n-grams over the lower-cased text with whitespace runs collapsed.
    m0 = m1 = m2 = 0  # mixes of the last three code points of the collapsed stream
    glen = 0
    prev_space = False
    # Word state.
    wh = FNV_OFFSET
    wlen = 0
    prev_word = -1  # hash of the previous word, -1 = none
    at_sentence_start = True
    # Scalar counters.
    letters = non_ascii_letters = cjk = digits = 0
    lines = 1 if n else 0
    code_m = 0.0
    math_m = 0.0
    imper = 0.0
    wh_starts = 0
    qmarks = 0
    sentences = 0
    words = 0
    ticks = 0
    line_start = True
    indent = 0
    last_nonspace = 0
    last_line_char = 0
    content = False

    def end_word() -> None:
        nonlocal wh, wlen, prev_word, at_sentence_start, code_m, math_m, imper, wh_starts, words
        if wlen == 0:
            return
        add(0, wh)
        if prev_word >= 0:
            add(1, ((prev_word * GOLDEN) + wh) & M64)
        if wh in _CODE_KW:
            code_m += 2.0
        if wh in _MATH_KW:
            math_m += 2.0
        if wh in _IMPER_KW:
            imper += 1.0 if at_sentence_start else 0.25
        if at_sentence_start and wh in _WH_KW:
            wh_starts += 1
        words += 1
        at_sentence_start = False
        prev_word = wh
        wh = FNV_OFFSET
        wlen = 0

    for i in range(n):
        c = text[i]
        cp = ord(c)
        space = c.isspace()
        lc = 0x20 if space else lower_cp(cp)
        # Char n-grams over the collapsed stream.
        if not (space and prev_space):
            m = char_mix(lc)
            glen += 1
            m0, m1, m2 = m1, m2, m
            if glen >= 3:
                add_gram(NGRAM_MULTS[0], _rotl(m0, 42) ^ _rotl(m1, 21) ^ m2, w_tri)
        prev_space = space
        # Words.
        if c.isalnum() or c == "_":
            if _single_char_word(cp):
                end_word()
                wh = ((FNV_OFFSET ^ lc) * FNV_PRIME) & M64
                wlen = 1
                end_word()
            else:
                wh = ((wh ^ lc) * FNV_PRIME) & M64
                wlen += 1
        else:
            end_word()
        # Scalars.
        if c.isalpha():
            letters += 1
            if cp >= 0x80:
                non_ascii_letters += 1
        s = script_of(cp)
        if s in (S_HAN, S_KANA, S_HANGUL):
            cjk += 1
        if c.isdigit():
            digits += 1
            math_m += 0.2
        if cp == 0x0A:
            lines += 1
            if last_line_char in (0x7B, 0x7D, 0x3B):  # { } ;
                code_m += 1.0
            elif last_line_char == 0x3A:  # :
                code_m += 0.5
            line_start = True
            indent = 0
            last_line_char = 0
            at_sentence_start = True
        elif space:
            if line_start:
                indent += 4 if cp == 0x09 else 1
        else:
            if line_start:
                if indent >= 2 and lines > 1:
                    code_m += 1.0
                line_start = False
            last_line_char = cp
            last_nonspace = cp
            if cp == 0x60:  # backtick: three in a row open or close a fence
                ticks += 1
                if ticks == 3:
                    code_m += 4.0
            else:
                ticks = 0
            if cp in (0x7B, 0x7D, 0x3B):
                code_m += 0.5
            elif cp in (0x2B, 0x2D, 0x2A, 0x2F, 0x3D, 0x5E, 0x3C, 0x3E, 0x25):  # + - * / = ^ < > %
                math_m += 0.5
            elif cp == 0x5C or cp == 0x24:  # backslash, $
                math_m += 1.0
            if cp == 0x3F or cp == 0xFF1F:
                qmarks += 1
            if cp in (0x2E, 0x21, 0x3F):  # . ! ? end a sentence before a space
                if i + 1 == n or text[i + 1].isspace():
                    if content:
                        sentences += 1
                        content = False
                    at_sentence_start = True
                else:
                    content = True
            elif cp in (0x3002, 0xFF01, 0xFF1F):  # CJK full stops end one anywhere
                if content:
                    sentences += 1
                    content = False
                at_sentence_start = True
            else:
                content = True
    end_word()
    if content:
        sentences += 1

    # Sublinear transform sign(x) * log1p(|x|) per bucket (x in weight units).
    vec = np.zeros(dim, dtype=np.float64)
    for b in range(dim):
        a = acc[b]
        if a:
            v = _LOG1P_TENTHS[abs(a)] if abs(a) < _LOG_TABLE else math.log1p(abs(a) / 10.0)
            vec[b] = v if a > 0 else -v
    norm = math.sqrt(float(np.dot(vec, vec)))
    if norm > 0.0:
        vec /= norm

    fw = 0.05 * words
    question = 0.5 if last_nonspace in (0x3F, 0xFF1F) else 0.0
    if qmarks:
        question += 0.25
    if wh_starts:
        question += 0.25
    tokens = count_tokens(text)
    scalars = np.array(
        [
            math.log1p(n),
            math.log1p(tokens),
            code_m / (code_m + 4.0 + fw),
            math_m / (math_m + 4.0 + fw),
            question,
            min(1.0, 0.5 * imper),
            non_ascii_letters / letters if letters else 0.0,
            cjk / n if n else 0.0,
            digits / n if n else 0.0,
            math.log1p(lines),
            math.log1p(sentences),
        ],
        dtype=np.float32,
    )
    return vec.astype(np.float32), scalars, tokens


def extract_many(texts: list[str], dim: int
                 ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32],
                            npt.NDArray[np.int64]]:
    """`extract` for every text: (vecs float32[n, dim], scalars float32[n, N_SCALARS],
    token estimates int64[n])."""
    if dim < 1 or dim & (dim - 1) or dim > MAX_DIM:
        raise ValueError("dim must be a power of two <= 2**30")
    vecs = np.empty((len(texts), dim), dtype=np.float32)
    scalars = np.empty((len(texts), len(SCALAR_NAMES)), dtype=np.float32)
    tokens = np.empty(len(texts), dtype=np.int64)
    for r, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{r}] must be a str, not {type(text).__name__}")
        vecs[r], scalars[r], tokens[r] = extract(text, dim)
    return vecs, scalars, tokens
